# Shared by the set-up scripts: make sure system packages and the Rust toolchain exist.
# Sourced, not run.

# The Debian packages imgproc needs to build and test.
IMGPROC_PACKAGES=(build-essential cmake nasm pkg-config libopenmpi-dev openmpi-bin libclang-dev ocl-icd-libopencl1 pocl-opencl-icd iproute2 util-linux time strace chromium python3 tcpdump)

# need_packages PKG...: installs the missing ones with apt when root, otherwise prints
# the exact command to run and exits 1.
need_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "imgproc: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "imgproc: missing system packages; run:" >&2
        echo "  sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
}

# need_rust: checks for cargo (1.89 or newer: AVX-512 intrinsics).
need_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "imgproc: Rust is missing; install it (1.89 or newer) with:" >&2
        echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
        exit 1
    fi
}
