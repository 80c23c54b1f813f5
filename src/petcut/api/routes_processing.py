"""``POST /api/v2/remove-background``: the cut-out PNG of an uploaded image.

Issue 4 completes the processing API (output formats, masks, crop, JSON bodies, effects); this route is
the user path the runtime and the warmup are built around.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import Response

from petcut.api.deps import CpuPool, get_cpu, get_runtime, get_settings, unless_disconnected
from petcut.api.processing import cutout_png
from petcut.config import Settings
from petcut.model.runtime import ModelRuntime

router = APIRouter()


@router.post(
    "/api/v2/remove-background",
    tags=["processing"],
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The cut-out (RGBA PNG)."}},
)
async def remove_background(
    request: Request,
    file: UploadFile = File(..., description="the photo (JPEG, PNG, WebP, HEIC, GIF, TIFF)"),
    use_cache: bool = Query(True, description="use the result cache (accepted; no cache yet)"),
    runtime: ModelRuntime = Depends(get_runtime),
    settings: Settings = Depends(get_settings),
    cpu: CpuPool = Depends(get_cpu),
) -> Response:
    runtime.check_available()  # before reading the upload into memory
    data = await file.read()
    result = await unless_disconnected(request, cutout_png(data, settings=settings, runtime=runtime, cpu=cpu))
    headers = {
        "X-Processing-Time": f"{result.timings['total']:.3f}",
        "X-Cache-Hits": "0",
        "X-Foreground-Found": "true" if result.box else "false",
    }
    if result.box is not None:
        left, top, width, height = result.box
        headers.update(
            {
                "X-Foreground-Left": str(left),
                "X-Foreground-Top": str(top),
                "X-Foreground-Width": str(width),
                "X-Foreground-Height": str(height),
            }
        )
    return Response(result.data, media_type="image/png", headers=headers)
