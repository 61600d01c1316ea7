# techniques: T1059.006 T1027 T1140
# Encoded Python payload: `python3 -c "exec(base64.b64decode(...))"`. The decoded code runs
# `os.system("id")` and `subprocess.run(["uname","-a"])` (output discarded).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v python3 >/dev/null || exit 0
# import os,subprocess
# os.system("id >/dev/null")
# subprocess.run(["uname","-a"],stdout=subprocess.DEVNULL)
python3 -c "import base64;exec(base64.b64decode('aW1wb3J0IG9zLHN1YnByb2Nlc3MKb3Muc3lzdGVtKCJpZCA+L2Rldi9udWxsIikKc3VicHJvY2Vzcy5ydW4oWyJ1bmFtZSIsIi1hIl0sc3Rkb3V0PXN1YnByb2Nlc3MuREVWTlVMTCkK'))"
exit 0
