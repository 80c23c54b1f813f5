#!/usr/bin/env bash
# Release petcut to Cloud Run safely (docs/deploy.md):
#   1. build and push the image with Cloud Build (no local Docker needed)
#   2. deploy it as a new revision under a tag, with no traffic
#   3. `petcut smoke` the tag's URL                        -> failure: stop, no traffic was moved
#   4. canary: CANARY_PERCENT % of traffic to the tag, smoke the service and tag URLs CANARY_CHECKS times
#   5. all traffic to the tag, smoke the service URL
# Any failure after step 4 began puts the traffic back exactly as it was (rollback) and exits non-zero.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/deploy.sh --project PROJECT --origin ORIGIN [options]

  --project ID         Google Cloud project (env PROJECT, or CLOUDSDK_CORE_PROJECT)
  --region REGION      Cloud Run region with L4 GPUs (env REGION; default europe-west4)
  --service NAME       Cloud Run service (env SERVICE; default petcut)
  --repo URL           image repository (env IMAGE_REPO; default REGION-docker.pkg.dev/PROJECT/petcut)
  --tag TAG            release tag: image tag, revision SERVICE-TAG and traffic tag (env TAG;
                       default rYYYYMMDD-HHMMSS plus the git commit); lowercase letters, digits, dashes
  --image IMAGE        deploy this image instead of building one (env IMAGE)
  --origin ORIGIN      an allowed CORS origin for `petcut smoke` (env ORIGIN; required)
  --mode MODE          model weights baked into the image (env MODE; default base)
  --target gpu|cpu     Dockerfile target (env TARGET; default gpu)
  --manifest FILE      Cloud Run service YAML (env SERVICE_YAML; default deploy/cloudrun/service.yaml)
  --canary-percent N   traffic share of the canary (env CANARY_PERCENT; default 10)
  --canary-checks N    smoke rounds during the canary (env CANARY_CHECKS; default 3)
  --canary-interval S  seconds before each canary round (env CANARY_INTERVAL; default 30)
  --smoke-wait S       how long `petcut smoke` waits for /ready (env SMOKE_WAIT; default 300)
  --skip-build         deploy IMAGE_REPO/petcut:TAG as already pushed
  --dry-run            print the commands, run none of them
  -h, --help           this text

Tools: GCLOUD (default gcloud), PETCUT (default petcut), PYTHON with PyYAML (default python3).
Exit status: 0 released; 1 failed before any traffic moved; 2 bad usage;
             3 failed after traffic moved, rolled back; 4 failed and the rollback failed too.
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MANIFEST_PY=$HERE/cloudrun/manifest.py

GCLOUD=${GCLOUD:-gcloud}
PETCUT=${PETCUT:-petcut}
PYTHON=${PYTHON:-python3}

PROJECT=${PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}
REGION=${REGION:-europe-west4}
SERVICE=${SERVICE:-petcut}
IMAGE_REPO=${IMAGE_REPO:-}
TAG=${TAG:-}
IMAGE=${IMAGE:-}
ORIGIN=${ORIGIN:-}
MODE=${MODE:-base}
TARGET=${TARGET:-gpu}
SERVICE_YAML=${SERVICE_YAML:-$HERE/cloudrun/service.yaml}
CANARY_PERCENT=${CANARY_PERCENT:-10}
CANARY_CHECKS=${CANARY_CHECKS:-3}
CANARY_INTERVAL=${CANARY_INTERVAL:-30}
SMOKE_WAIT=${SMOKE_WAIT:-300}
SKIP_BUILD=${SKIP_BUILD:-0}
DRY_RUN=${DRY_RUN:-0}

# State for the rollback.
PREV_SPLIT=""
TRAFFIC_MOVED=0
ROLLED_BACK=0
WORK=""

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage_error() { log "ERROR: $*"; log "see deploy/deploy.sh --help"; exit 2; }
step() { log "== $*"; }

# Every external command goes through run: traced to stderr, or only printed (stdout) with --dry-run.
exec 3>&1
show() {
  local arg line="+"
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+=" $arg"; else line+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  printf '%s\n' "$line"
}
run() {
  if ((DRY_RUN)); then
    show "$@" >&3
    return 0
  fi
  show "$@" >&2
  "$@"
}

smoke() { run "$PETCUT" smoke "$1" --origin "$ORIGIN" --wait "$SMOKE_WAIT"; }

gcloud_run() { run "$GCLOUD" run "$@" --project="$PROJECT" --region="$REGION"; }

rollback() {
  ROLLED_BACK=1
  log "rolling back: traffic to $PREV_SPLIT (as before this release)"
  if gcloud_run services update-traffic "$SERVICE" --to-revisions="$PREV_SPLIT" --quiet; then
    log "rolled back. Revision $REVISION keeps its tag $TAG (no traffic) for debugging"
    return 0
  fi
  log "ROLLBACK FAILED. Restore the traffic by hand:"
  log "  $GCLOUD run services update-traffic $SERVICE --project=$PROJECT --region=$REGION --to-revisions=$PREV_SPLIT"
  return 1
}

fail_after_traffic() {
  log "ERROR: $*"
  if rollback; then exit 3; else exit 4; fi
}

on_exit() {
  local rc=$?
  trap - EXIT
  if ((rc != 0 && TRAFFIC_MOVED && !ROLLED_BACK)); then
    log "ERROR: stopped (exit $rc) after the new revision got traffic"
    if rollback; then rc=3; else rc=4; fi
  fi
  [[ -n $WORK ]] && rm -rf "$WORK"
  exit "$rc"
}

parse_args() {
  local opt value
  while (($# > 0)); do
    case $1 in
      --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
      -h | --help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1; shift; continue ;;
      --skip-build) SKIP_BUILD=1; shift; continue ;;
      --project | --region | --service | --repo | --tag | --image | --origin | --mode | --target | --manifest | \
        --canary-percent | --canary-checks | --canary-interval | --smoke-wait)
        (($# >= 2)) || usage_error "$1 needs a value"
        opt=$1 value=$2
        shift 2 ;;
      *) usage_error "unknown argument: $1" ;;
    esac
    case $opt in
      --project) PROJECT=$value ;;
      --region) REGION=$value ;;
      --service) SERVICE=$value ;;
      --repo) IMAGE_REPO=$value ;;
      --tag) TAG=$value ;;
      --image) IMAGE=$value ;;
      --origin) ORIGIN=$value ;;
      --mode) MODE=$value ;;
      --target) TARGET=$value ;;
      --manifest) SERVICE_YAML=$value ;;
      --canary-percent) CANARY_PERCENT=$value ;;
      --canary-checks) CANARY_CHECKS=$value ;;
      --canary-interval) CANARY_INTERVAL=$value ;;
      --smoke-wait) SMOKE_WAIT=$value ;;
    esac
  done
}

validate() {
  [[ -n $PROJECT ]] || usage_error "--project (or PROJECT) is required"
  [[ -n $ORIGIN ]] || usage_error "--origin (or ORIGIN) is required: an origin the service allows (PETCUT_CORS_ORIGINS)"
  [[ $SERVICE =~ ^[a-z]([a-z0-9-]*[a-z0-9])?$ ]] || usage_error "bad service name: $SERVICE"
  if [[ -z $TAG ]]; then
    TAG=r$(date -u +%Y%m%d-%H%M%S)
    local commit
    if commit=$(git -C "$ROOT" rev-parse --short=7 HEAD 2>/dev/null); then TAG=$TAG-$commit; fi
  fi
  [[ $TAG =~ ^[a-z]([a-z0-9-]*[a-z0-9])?$ ]] || usage_error "bad tag $TAG: lowercase letters, digits and dashes, starting with a letter"
  REVISION=$SERVICE-$TAG
  ((${#REVISION} <= 63)) || usage_error "revision name $REVISION is longer than 63 characters: shorten --tag"
  [[ $TARGET == gpu || $TARGET == cpu ]] || usage_error "--target must be gpu or cpu"
  if ! [[ $CANARY_PERCENT =~ ^[0-9]+$ ]] || ((CANARY_PERCENT < 1 || CANARY_PERCENT > 99)); then
    usage_error "--canary-percent must be 1..99"
  fi
  [[ $CANARY_CHECKS =~ ^[0-9]+$ ]] || usage_error "--canary-checks must be a whole number"
  [[ $CANARY_INTERVAL =~ ^[0-9]+$ ]] || usage_error "--canary-interval must be whole seconds"
  [[ $SMOKE_WAIT =~ ^[0-9]+$ ]] || usage_error "--smoke-wait must be whole seconds"
  [[ -f $SERVICE_YAML ]] || usage_error "no service manifest at $SERVICE_YAML"
  IMAGE_REPO=${IMAGE_REPO:-$REGION-docker.pkg.dev/$PROJECT/petcut}
  if [[ -n $IMAGE ]]; then SKIP_BUILD=1; else IMAGE=$IMAGE_REPO/petcut:$TAG; fi
  if ((!DRY_RUN)); then
    command -v "$GCLOUD" >/dev/null || die "gcloud not found: install the Google Cloud SDK or set GCLOUD"
    command -v "$PETCUT" >/dev/null || die "petcut not found: install petcut (make venv) or set PETCUT"
    "$PYTHON" -c 'import yaml' 2>/dev/null || die "$PYTHON cannot import yaml: set PYTHON to petcut's python"
  fi
}

main() {
  parse_args "$@"
  validate
  WORK=$(mktemp -d)
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  log "release $TAG: image $IMAGE -> service $SERVICE (project $PROJECT, region $REGION)"

  if ((!SKIP_BUILD)); then
    step "1/5 build and push $IMAGE (target $TARGET, weights $MODE)"
    run "$GCLOUD" builds submit "$ROOT" --project="$PROJECT" --config="$HERE/cloudbuild.yaml" \
      --substitutions="_IMAGE=$IMAGE,_TARGET=$TARGET,_MODE=$MODE" --quiet ||
      die "the build failed; nothing was deployed"
  else
    step "1/5 build skipped: deploying $IMAGE"
  fi

  step "2/5 deploy revision $REVISION with no traffic, tagged $TAG"
  local existing current=() tag_url service_url
  existing=$(gcloud_run services list --filter="metadata.name=$SERVICE" --format='value(metadata.name)') ||
    die "cannot list the Cloud Run services"
  # The filter may match by word (petcut-staging for petcut): look for the exact name.
  if ((DRY_RUN)) || grep -qxF -- "$SERVICE" <<<"$existing"; then
    gcloud_run services describe "$SERVICE" --format=json >"$WORK/before.json" ||
      die "cannot read the service $SERVICE"
    current=(--current "$WORK/before.json")
    if ((DRY_RUN)); then
      PREV_SPLIT="<current-traffic>"
    else
      PREV_SPLIT=$("$PYTHON" "$MANIFEST_PY" split "$WORK/before.json")
    fi
    log "current traffic: ${PREV_SPLIT:-none}"
  else
    log "service $SERVICE does not exist yet: it is created with this revision"
  fi
  run "$PYTHON" "$MANIFEST_PY" render --manifest "$SERVICE_YAML" --service "$SERVICE" --project "$PROJECT" \
    --region "$REGION" --image "$IMAGE" --revision "$REVISION" --tag "$TAG" "${current[@]}" >"$WORK/service.yaml" ||
    die "cannot render $SERVICE_YAML"
  gcloud_run services replace "$WORK/service.yaml" --quiet ||
    die "revision $REVISION did not deploy (or did not become ready); no traffic was moved"
  gcloud_run services describe "$SERVICE" --format=json >"$WORK/after.json" || die "cannot read the service $SERVICE"
  if ((DRY_RUN)); then
    tag_url="<tag-url>" service_url="<service-url>"
  else
    tag_url=$("$PYTHON" "$MANIFEST_PY" tag-url "$WORK/after.json" "$TAG") || die "no URL for tag $TAG"
    service_url=$("$PYTHON" "$MANIFEST_PY" service-url "$WORK/after.json") || die "no service URL"
  fi
  log "revision $REVISION is at $tag_url"

  step "3/5 smoke test the new revision at $tag_url"
  if ! smoke "$tag_url"; then
    log "ERROR: the smoke test failed on $tag_url; no traffic was moved."
    log "The revision stays reachable at its tag URL for debugging. Remove the tag with:"
    log "  $GCLOUD run services update-traffic $SERVICE --project=$PROJECT --region=$REGION --remove-tags=$TAG"
    exit 1
  fi

  if [[ -z $PREV_SPLIT ]]; then
    log "new service: revision $REVISION already serves all traffic at $service_url"
    log "released $TAG"
    return 0
  fi

  step "4/5 canary: $CANARY_PERCENT% of traffic to $TAG, $CANARY_CHECKS checks"
  TRAFFIC_MOVED=1
  gcloud_run services update-traffic "$SERVICE" --to-tags="$TAG=$CANARY_PERCENT" --quiet ||
    fail_after_traffic "moving $CANARY_PERCENT% of traffic to $TAG failed"
  local round
  for ((round = 1; round <= CANARY_CHECKS; round++)); do
    if ((CANARY_INTERVAL > 0)); then run sleep "$CANARY_INTERVAL"; fi
    log "canary check $round/$CANARY_CHECKS"
    smoke "$service_url" || fail_after_traffic "canary check $round failed on the service URL $service_url"
    smoke "$tag_url" || fail_after_traffic "canary check $round failed on the new revision at $tag_url"
  done

  step "5/5 all traffic to $TAG"
  gcloud_run services update-traffic "$SERVICE" --to-tags="$TAG=100" --quiet ||
    fail_after_traffic "moving all traffic to $TAG failed"
  smoke "$service_url" || fail_after_traffic "the smoke test failed on $service_url after the switch"
  TRAFFIC_MOVED=0
  if ((DRY_RUN)); then
    log "dry run: nothing was run"
    return 0
  fi
  log "released $TAG: revision $REVISION serves all traffic at $service_url"
  log "to go back: $GCLOUD run services update-traffic $SERVICE --project=$PROJECT --region=$REGION --to-revisions=$PREV_SPLIT"
}

main "$@"
