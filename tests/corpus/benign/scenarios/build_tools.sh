# A developer building and testing a small C and Python project, with git.
set -e
mkdir -p proj && cd proj
git init -q .
printf 'int main(void){return 0;}\n' > main.c
cc -O2 -o main main.c && ./main
printf 'print("ok")\n' > t.py && python3 t.py >/dev/null
git add -A && git -c user.email=a@b -c user.name=dev commit -qm init
ls -la > /dev/null; cat /etc/os-release > /dev/null; ps aux > /dev/null
tar czf ../proj.tgz . && cd .. && rm -rf proj proj.tgz
