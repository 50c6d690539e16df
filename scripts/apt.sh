# Sourced by the scripts that need a Debian package: `apt_install PKG...` installs them
# non-interactively (through sudo when not root), refreshing the package lists once if the first
# try fails. Each apt call is bounded by 5 minutes. Sets `sudo` for the caller's own commands.

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 300 $sudo apt-get install -y "$@"; then
        timeout 300 $sudo apt-get update
        timeout 300 $sudo apt-get install -y "$@"
    fi
}
