# An edit-compile-test loop: a small C library and test built with make (or cc), run, and a
# Python unittest module; rebuilt after an edit; cleaned.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
mkdir -p proj && cd proj
printf 'int add(int a, int b) { return a + b; }\n' > add.c
printf 'int add(int, int);\nint main(void) { return add(2, 2) == 4 ? 0 : 1; }\n' > test_add.c
printf 'test_add: add.o test_add.o\n\tcc -o $@ add.o test_add.o\n%%.o: %%.c\n\tcc -O2 -Wall -c $<\ncheck: test_add\n\t./test_add\nclean:\n\trm -f *.o test_add\n' > Makefile
if command -v make >/dev/null && command -v cc >/dev/null; then
  make -s check
  printf 'int add(int a, int b) { return b + a; }\n' > add.c
  make -s check
  make -s clean
elif command -v cc >/dev/null; then
  cc -O2 -o test_add add.c test_add.c && ./test_add
fi
if [ -x /usr/bin/python3 ]; then
  printf 'import unittest\n\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(2 + 2, 4)\n\nif __name__ == "__main__":\n    unittest.main()\n' > test_py.py
  /usr/bin/python3 -m unittest -q test_py 2>/dev/null
fi
cd .. && rm -rf proj
exit 0
