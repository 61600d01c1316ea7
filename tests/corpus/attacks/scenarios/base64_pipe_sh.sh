# techniques: T1027 T1140 T1059.004
# Obfuscated shell commands: a base64 blob decoded and piped to sh, as a one-liner delivered
# through `sh -c` (how RCE payloads, cron lines and remote commands arrive) and as a pipeline in
# this script; decoded inside $(...); and the brace-expansion form
# `bash -c {echo,B64}|{base64,-d}|{bash,-i}` used to avoid spaces.
# The payload is `id; uname -a; hostname` (output discarded).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
HOME=$PWD/home; export HOME; mkdir -p "$HOME"
sh -c 'echo aWQ7IHVuYW1lIC1hOyBob3N0bmFtZQo= | base64 -d | sh' >/dev/null
echo aWQ7IHVuYW1lIC1hOyBob3N0bmFtZQo= | base64 -d | sh >/dev/null
sh -c "$(echo aWQ7IHVuYW1lIC1hOyBob3N0bmFtZQo= | base64 --decode)" >/dev/null
bash -c '{echo,aWQ7IHVuYW1lIC1hOyBob3N0bmFtZQo=}|{base64,-d}|{bash,-i}' >/dev/null 2>&1
rm -rf "$HOME"
exit 0
