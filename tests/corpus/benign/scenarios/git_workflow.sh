# A developer's git workflow against a local bare "remote": clone, branch, edit, commit, diff,
# log, merge, push, fetch. All under the temp working directory.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v git >/dev/null || exit 0
HOME=$PWD/home; export HOME; mkdir -p "$HOME"
git config --global user.email dev@example.com
git config --global user.name dev
git config --global init.defaultBranch main
git init -q --bare remote.git
git clone -q remote.git work 2>/dev/null
cd work
printf '# demo\n' > README.md
git add README.md && git commit -qm 'initial commit'
git push -q origin main 2>/dev/null
git checkout -qb feature
printf 'def add(a, b):\n    return a + b\n' > calc.py
git add calc.py && git commit -qm 'add calc'
git diff main --stat > /dev/null
git log --oneline -n 5 > /dev/null
git checkout -q main && git merge -q --no-edit feature
git push -q origin main 2>/dev/null
git fetch -q origin
git status --short > /dev/null
cd ..
rm -rf work remote.git "$HOME"
exit 0
