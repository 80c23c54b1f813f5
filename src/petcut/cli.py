"""The ``petcut`` command: serve | remove | weights | smoke."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from petcut.config import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Background removal for pet photos.")
weights_app = typer.Typer(no_args_is_help=True, help="Find, download, verify and prepare model weights.")
app.add_typer(weights_app, name="weights")

err = Console(stderr=True)
out = Console()

ModeOpt = Annotated[str | None, typer.Option("--mode", help="base | fast | base-nightly")]
ResizeOpt = Annotated[str | None, typer.Option("--resize", help="static | dynamic")]
CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", help="checkpoint file to load")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | mps")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="inspyrenet | isnet (default: PETCUT_MODEL)")]
VariantOpt = Annotated[str | None, typer.Option("--variant", help="IS-Net variant: medium | small")]


def _settings(**overrides: object) -> Settings:
    """Environment settings with the given command-line options on top; exit 2 when invalid."""
    try:
        return load_settings(**{key: value for key, value in overrides.items() if value is not None})
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="interface to bind (PETCUT_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (PORT)")] = None,
) -> None:
    """Run the HTTP service."""
    import json

    from petcut.api.server import run

    try:
        settings = load_settings(**{k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    except SettingsError as exc:  # the service logs JSON lines only, this one included
        print(json.dumps({"severity": "CRITICAL", "message": str(exc), "logger": "petcut.config"}), file=sys.stderr)
        raise typer.Exit(2) from None
    run(settings)


@app.command()
def remove(
    images: Annotated[list[Path], typer.Argument(help="image files", exists=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="output directory")],
    mask: Annotated[bool, typer.Option("--mask", help="write the alpha mask (L) instead of the cut-out")] = False,
    fmt: Annotated[str, typer.Option("--format", help="png | webp | jpeg")] = "png",
    mode: ModeOpt = None,
    resize: ResizeOpt = None,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    model: ModelOpt = None,
    variant: VariantOpt = None,
) -> None:
    """Cut the subject out of each IMAGE into OUTPUT/<stem>.<format>; go on past failures."""
    fmt = fmt.lower()
    if fmt not in ("png", "webp", "jpeg", "jpg"):
        err.print(f"[red]error:[/red] --format must be png, webp or jpeg, not {fmt!r}")
        raise typer.Exit(2)
    settings = _settings(
        mode=mode, resize=resize, checkpoint=checkpoint, device=device, model=model, isnet_variant=variant
    )
    failed = remove_files(images, output, settings, mask=mask, fmt=fmt, console=err)
    raise typer.Exit(1 if failed else 0)


@weights_app.command("path")
def weights_path(mode: ModeOpt = None, model: ModelOpt = None, variant: VariantOpt = None) -> None:
    """Print where the weights for the model (and MODE or VARIANT) are expected."""
    from petcut.model.weights import weights_source

    settings = _settings(mode=mode, model=model, isnet_variant=variant)
    out.print(str(weights_source(settings).default_path()), soft_wrap=True)


def _download(label: str, fetch: Callable[[Callable[[int, int | None], None]], Path]) -> Path:
    """Run ``fetch(progress)`` under a download progress bar; a ModelError is printed and exits 1."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from petcut.model.base import ModelError

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=err) as progress:  # fmt: skip
        task = progress.add_task(label, total=None)
        try:
            return fetch(lambda done, total: progress.update(task, completed=done, total=total))
        except ModelError as exc:
            progress.stop()
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None


@weights_app.command("download")
def weights_download(
    mode: ModeOpt = None,
    model: ModelOpt = None,
    variant: VariantOpt = None,
    force: Annotated[bool, typer.Option(help="download even if a verified file exists")] = False,
) -> None:
    """Download the model's published weights into the weights directory and verify them."""
    from petcut.model.base import ModelError
    from petcut.model.weights import weights_source

    settings = _settings(mode=mode, model=model, isnet_variant=variant)
    source = weights_source(settings)
    target = source.default_path()
    if target.is_file() and not force:
        try:
            source.verify(target)
            out.print(f"already present and verified: {target}")
            _after_weights(settings, downloaded=False)
            return
        except ModelError:
            err.print(f"{target} is corrupt; downloading again")
    if notice := source.download_notice():
        err.print(notice)
    path = _download(source.download_label, source.download)
    out.print(f"downloaded and verified: {path}")
    _after_weights(settings, downloaded=True)


def _after_weights(settings: Settings, *, downloaded: bool) -> None:
    """Once the weights are there: IS-Net's licence; InSPyReNet's OpenVINO artifact."""
    if settings.model == "isnet":
        from petcut.model import isnet_weights

        if not downloaded:
            err.print(f"licence: {isnet_weights.LICENCE}")
            return
        err.print(
            f"licence: {isnet_weights.LICENCE}; the full text is in {settings.weights_dir / isnet_weights.LICENCE_FILE}"
            ". Serving IS-Net to the public means the AGPL applies to that service."
        )
    elif not prepare_openvino(settings) and downloaded:
        # the weights are fine; the torch engine serves without the artifact
        err.print("the service will run on torch until `petcut weights prepare` succeeds")


@weights_app.command("verify")
def weights_verify(
    mode: ModeOpt = None, checkpoint_path: CheckpointOpt = None, model: ModelOpt = None, variant: VariantOpt = None
) -> None:
    """Check the weights file against the published checksum (exit 1 if missing or corrupt)."""
    from petcut.model.base import ModelError
    from petcut.model.weights import weights_source

    settings = _settings(mode=mode, checkpoint=checkpoint_path, model=model, isnet_variant=variant)
    source = weights_source(settings)
    try:
        path = source.locate()
        if source.verify(path, use_stamp=False):
            out.print(f"ok: {path} matches {source.checksum}")
        else:
            out.print(f"{path}: no published md5 for {settings.mode}; size {path.stat().st_size} bytes")
    except ModelError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@weights_app.command("prepare")
def weights_prepare(
    mode: ModeOpt = None,
    checkpoint_path: CheckpointOpt = None,
    force: Annotated[bool, typer.Option(help="prepare again even if a valid artifact exists")] = False,
) -> None:
    """Export the checkpoint once to an OpenVINO IR next to the weights (the fast CPU engine)."""
    settings = _settings(mode=mode, checkpoint=checkpoint_path)
    if not prepare_openvino(settings, force=force):
        raise typer.Exit(1)


def prepare_openvino(settings: Settings, *, force: bool = False) -> bool:
    """Run :func:`petcut.model.prepare.prepare` with a progress display; False (and a message) on failure."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from petcut.model import prepare
    from petcut.model.base import ModelError

    if settings.model != "inspyrenet":
        out.print(f"{settings.model}: OpenVINO reads its ONNX file directly; nothing to prepare")
        return True
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("OpenVINO artifact", total=None)
        try:
            artifact = prepare.prepare(
                settings, force=force, progress=lambda step: progress.update(task, description=f"OpenVINO: {step}")
            )
        except (ModelError, OSError, ImportError) as exc:
            progress.stop()
            err.print(f"[red]error:[/red] cannot prepare the OpenVINO artifact: {exc}")
            return False
    out.print(f"prepared: {artifact.directory}")
    return True


@app.command()
def smoke(
    url: Annotated[str, typer.Argument(help="the service's base URL, e.g. https://petcut-abc.a.run.app")],
    origin: Annotated[
        str | None, typer.Option("--origin", help="an allowed CORS origin; without it the CORS checks are skipped")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for /ready")] = 120.0,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="seconds per request")] = 60.0,
) -> None:
    """Check a running service: health, ready, CORS, warmup and one real request (exit 1 on any failure)."""
    from petcut.smoke import render, run_smoke

    if not url.startswith(("http://", "https://")):
        err.print(f"[red]error:[/red] URL must start with http:// or https:// (got {url!r})")
        raise typer.Exit(2)
    if origin is not None and not origin.startswith(("http://", "https://")):
        err.print(f"[red]error:[/red] --origin must be an origin such as https://shop.example.com (got {origin!r})")
        raise typer.Exit(2)
    report = run_smoke(url, origin=origin, wait=wait, timeout=timeout, progress=lambda line: err.print(line))
    render(report, out)
    raise typer.Exit(0 if report.ok else 1)


def _output_name(source: Path, ext: str, taken: set[str]) -> str:
    """``<stem>.<ext>``, made unique when two inputs share a stem (``a.jpg`` and ``a.png``)."""
    name, counter = f"{source.stem}.{ext}", 2
    while name in taken:
        name, counter = f"{source.stem}-{counter}.{ext}", counter + 1
    taken.add(name)
    return name


def remove_files(images: list[Path], output: Path, settings: Settings, *, mask: bool, fmt: str,
                 console: Console) -> list[Path]:  # fmt: skip
    """Process each image as the service's remove-background does (:func:`petcut.pipeline.remove_image`);
    report and skip failures. Returns the images that failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from petcut.imaging import ImageError
    from petcut.model.base import ModelError
    from petcut.model.segmenter import load_segmenter
    from petcut.pipeline import ModelOutputError, RemoveOptions, remove_image

    try:
        segmenter = load_segmenter(settings)
    except ModelError as exc:
        console.print(f"[red]error:[/red] cannot load the model: {exc}")
        raise typer.Exit(2) from None
    output.mkdir(parents=True, exist_ok=True)
    ext = "jpg" if fmt in ("jpeg", "jpg") else fmt
    options = RemoveOptions(output="mask" if mask else "cutout", fmt=fmt)
    failed: list[Path] = []
    taken: set[str] = set()
    with Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:  # fmt: skip
        task = progress.add_task("removing backgrounds", total=len(images))
        for source in images:
            progress.update(task, description=source.name)
            try:
                result = remove_image(segmenter, source.read_bytes(), settings, options)
                target = output / _output_name(source, ext, taken)
                target.write_bytes(result)
                progress.console.print(f"{source} → {target}")
            except (ImageError, ModelOutputError, OSError) as exc:
                failed.append(source)
                progress.console.print(f"[red]failed:[/red] {source}: {exc}")
            progress.advance(task)
    if failed:
        console.print(f"[red]{len(failed)} of {len(images)} failed[/red]")
    return failed


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
