#!/usr/bin/env bash
# Builds rb6 in release mode and runs the whole benchmark: plan time and memory, apply
# overhead against make and Ansible, and the makespan of parallel sleeps.
#
# Usage: bench/run.sh [--quick]
#   --quick         fewer repetitions, for a smoke test of the script itself
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: target/ in the repository)
#   BENCH_WORK        scratch directory for generated files and state; it must be on the
#                     disk whose fsync cost you want to measure, not tmpfs
#                     (default: bench/.work in the repository)
#   BENCH_ANSIBLE_TASKS  tasks in the Ansible playbook (default 40; 0 skips Ansible)
#   BENCH_NO_INSTALL  set to 1 to skip installing hyperfine, GNU time and ansible-core
#
# Prints one table at the end and writes it, with the raw timings, to $BENCH_WORK/results.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
quick=0
[[ ${1:-} == --quick ]] && quick=1

work=${BENCH_WORK:-$here/.work}
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$work"

install_tools() {
    [[ ${BENCH_NO_INSTALL:-0} == 1 ]] && return
    local missing=()
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    [[ -x /usr/bin/time ]] || missing+=(time)
    command -v make >/dev/null || missing+=(make)
    if ((${#missing[@]})) && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} with apt-get" >&2
        apt-get install -y -qq "${missing[@]}" >/dev/null || echo "apt-get could not install ${missing[*]}" >&2
    fi
    if [[ ${BENCH_ANSIBLE_TASKS:-40} != 0 && ! -x $here/.venv/bin/ansible-playbook ]]; then
        echo "installing ansible-core into bench/.venv" >&2
        python3 -m venv "$here/.venv" && "$here/.venv/bin/pip" install -q ansible-core \
            || echo "ansible-core could not be installed; the Ansible row is skipped" >&2
    fi
}

install_tools
echo "building rb6 (release) into $target" >&2
(cd "$root" && CARGO_TARGET_DIR=$target cargo build --release --quiet)

exec python3 "$here/bench.py" --rb6 "$target/release/rb6" --work "$work" --quick "$quick" \
    --ansible "$here/.venv/bin/ansible-playbook" --ansible-tasks "${BENCH_ANSIBLE_TASKS:-40}"
