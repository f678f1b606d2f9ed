#!/usr/bin/env bash
# Serve exported tf_talkface models with TensorFlow Serving (the official docker image or the
# tensorflow_model_server binary). See docs/serving.md.
set -euo pipefail

PROG=$(basename "$0")

usage() {
  cat <<EOF
Usage: $PROG [--docker|--binary] [--rest-port 8501] [--grpc-port 8500]
       $(printf '%*s' ${#PROG} '') [--image IMAGE] [--gpu] [--config-out FILE] [--dry-run]
       $(printf '%*s' ${#PROG} '') MODEL_DIR_OR_CONFIG... [-- EXTRA_SERVER_FLAGS...]

Serve one or more models exported by 'python -m tf_talkface.export' with TF Serving.

MODEL_DIR_OR_CONFIG
  saved_models/NAME   a model folder holding numbered version folders (NAME/1, NAME/2, ...),
                      each with saved_model.pb. Several folders can be given. The script writes
                      a models.config (model_config_list, one entry per model, named after the
                      folder, with model_version_policy { all {} } so every version is served).
  FILE.config         an existing model_config_list file, used as it is (alone).

Options
  --docker            run the official image (default when 'docker' is on PATH); the model
                      folders are mounted read-only at /models/NAME
  --binary            run tensorflow_model_server from PATH (default when docker is absent)
  --rest-port N       host port of the REST API (default 8501)
  --grpc-port N       host port of the gRPC API (default 8500)
  --image IMAGE       docker image (default tensorflow/serving:latest, with --gpu
                      tensorflow/serving:latest-gpu)
  --gpu               docker: use the GPU image and --gpus all (the exported graph runs on
                      CPU or GPU unchanged)
  --config-out FILE   where to write models.config (default: a new temporary folder)
  --dry-run           print the config and the command, start nothing
  -h, --help          this help
  -- FLAGS...         passed on to the server, e.g. -- --rest_api_timeout_in_ms=60000

Then, for example:
  python -m tf_talkface.client --url http://localhost:8501 --model NAME \\
      --card saved_models/NAME/1/model_card.json -o out/ speech.wav
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 2; }

mode=""
rest_port=8501
grpc_port=8500
image=""
gpu=0
config_out=""
dry_run=0
args=()
extra=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --docker) mode=docker; shift ;;
    --binary) mode=binary; shift ;;
    --rest-port) [[ $# -ge 2 ]] || die "--rest-port needs a value"; rest_port=$2; shift 2 ;;
    --rest-port=*) rest_port=${1#*=}; shift ;;
    --grpc-port) [[ $# -ge 2 ]] || die "--grpc-port needs a value"; grpc_port=$2; shift 2 ;;
    --grpc-port=*) grpc_port=${1#*=}; shift ;;
    --image) [[ $# -ge 2 ]] || die "--image needs a value"; image=$2; shift 2 ;;
    --image=*) image=${1#*=}; shift ;;
    --gpu) gpu=1; shift ;;
    --config-out) [[ $# -ge 2 ]] || die "--config-out needs a value"; config_out=$2; shift 2 ;;
    --config-out=*) config_out=${1#*=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) args+=("$1"); shift ;;
  esac
done

[[ ${#args[@]} -gt 0 ]] || { usage >&2; die "give at least one model folder (saved_models/NAME) or a models.config"; }

for p in "$rest_port" "$grpc_port"; do
  [[ "$p" =~ ^[0-9]+$ ]] && (( p >= 1 && p <= 65535 )) || die "bad port '$p' (1-65535)"
done
[[ "$rest_port" != "$grpc_port" ]] || die "--rest-port and --grpc-port must differ"

# ---------------------------------------------------------------- which server
if [[ -z "$mode" ]]; then
  if command -v docker >/dev/null 2>&1; then
    mode=docker
  elif command -v tensorflow_model_server >/dev/null 2>&1; then
    mode=binary
  else
    die "neither 'docker' nor 'tensorflow_model_server' is on PATH. Install Docker and run
  docker pull tensorflow/serving, or install the binary (Debian/Ubuntu:
  https://www.tensorflow.org/tfx/serving/setup, package tensorflow-model-server),
  then run this script again (--docker or --binary)."
  fi
fi
if [[ $dry_run -eq 0 ]]; then
  if [[ $mode == docker ]] && ! command -v docker >/dev/null 2>&1; then
    die "--docker: 'docker' is not on PATH (install Docker, or use --binary)"
  fi
  if [[ $mode == binary ]] && ! command -v tensorflow_model_server >/dev/null 2>&1; then
    die "--binary: 'tensorflow_model_server' is not on PATH (see
  https://www.tensorflow.org/tfx/serving/setup, or use --docker)"
  fi
fi
if [[ -z "$image" ]]; then
  if [[ $gpu -eq 1 ]]; then image=tensorflow/serving:latest-gpu; else image=tensorflow/serving:latest; fi
fi

# ---------------------------------------------------------------- models and config
abspath() { (cd "$1" && pwd -P); }

user_config=""
names=()
paths=()
for a in "${args[@]}"; do
  if [[ -f "$a" ]]; then
    [[ ${#args[@]} -eq 1 ]] || die "$a: a models.config file must be given alone"
    user_config=$(cd "$(dirname "$a")" && pwd -P)/$(basename "$a")
    continue
  fi
  [[ -d "$a" ]] || die "$a: no such folder or config file"
  dir=$(abspath "$a")
  name=$(basename "$dir")
  if [[ -f "$dir/saved_model.pb" ]]; then
    die "$a is a version folder (it holds saved_model.pb); give the model folder above it
  ($(dirname "$dir")), which TF Serving scans for numbered versions"
  fi
  versions=()
  for v in "$dir"/*/; do
    v=${v%/}
    vn=$(basename "$v")
    [[ "$vn" =~ ^[0-9]+$ && -f "$v/saved_model.pb" ]] && versions+=("$vn")
  done
  if [[ ${#versions[@]} -eq 0 ]]; then
    die "$a: no numbered version folder with saved_model.pb (expected $a/1/saved_model.pb;
  export one with: python -m tf_talkface.export --checkpoint ... --out $a/1)"
  fi
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "$a: model name '$name' must be letters, digits, . _ -"
  [[ "$dir" != *'"'* && "$dir" != *'\'* ]] || die "$a: the path must not contain quotes or backslashes"
  for n in "${names[@]+"${names[@]}"}"; do
    [[ "$n" != "$name" ]] || die "two model folders are both named '$name'"
  done
  names+=("$name")
  paths+=("$dir")
  sorted=$(printf '%s\n' "${versions[@]}" | sort -n | tr '\n' ' ')
  echo "$PROG: model $name: versions ${sorted% } from $dir" >&2
done

write_config() {  # $1 = root of base_path ("" = the host paths)
  echo "model_config_list {"
  local i
  for i in "${!names[@]}"; do
    local base=${paths[$i]}
    [[ -z "$1" ]] || base="$1/${names[$i]}"
    cat <<EOF
  config {
    name: "${names[$i]}"
    base_path: "$base"
    model_platform: "tensorflow"
    model_version_policy { all {} }
  }
EOF
  done
  echo "}"
}

if [[ -n "$user_config" ]]; then
  config=$user_config
  echo "$PROG: using $config as it is" >&2
else
  if [[ -n "$config_out" ]]; then
    mkdir -p "$(dirname "$config_out")"
    config=$(cd "$(dirname "$config_out")" && pwd -P)/$(basename "$config_out")
  else
    config=$(mktemp -d "${TMPDIR:-/tmp}/tf_talkface_serving.XXXXXX")/models.config
  fi
  if [[ $mode == docker ]]; then write_config /models >"$config"; else write_config "" >"$config"; fi
  echo "$PROG: wrote $config:" >&2
  sed 's/^/    /' "$config" >&2
fi

# ---------------------------------------------------------------- command line
if [[ $mode == docker ]]; then
  cmd=(docker run --rm -p "$rest_port:8501" -p "$grpc_port:8500")
  [[ $gpu -eq 0 ]] || cmd+=(--gpus all)
  if [[ -n "$user_config" ]]; then
    # a user's config names host paths: mount each base_path at the same path in the container
    while IFS= read -r bp; do
      [[ "$bp" == /* ]] || die "$config: base_path '$bp' must be absolute for --docker"
      [[ -d "$bp" ]] || die "$config: base_path '$bp' is not a folder"
      cmd+=(-v "$bp:$bp:ro")
    done < <(sed -n 's/^[[:space:]]*base_path:[[:space:]]*"\(.*\)".*/\1/p' "$config")
    cmd+=(-v "$config:/models/models.config:ro")
  else
    for i in "${!names[@]}"; do
      cmd+=(-v "${paths[$i]}:/models/${names[$i]}:ro")
    done
    cmd+=(-v "$config:/models/models.config:ro")
  fi
  cmd+=("$image" --model_config_file=/models/models.config)
else
  cmd=(tensorflow_model_server "--port=$grpc_port" "--rest_api_port=$rest_port"
       "--model_config_file=$config")
fi
cmd+=("${extra[@]+"${extra[@]}"}")

echo "$PROG: REST http://localhost:$rest_port/v1/models/NAME, gRPC localhost:$grpc_port" >&2
printf '%s: running:' "$PROG" >&2
printf ' %q' "${cmd[@]}" >&2
echo >&2
if [[ $dry_run -eq 1 ]]; then
  exit 0
fi
exec "${cmd[@]}"
