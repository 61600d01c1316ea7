# An editor-style edit cycle on configuration files in the temp working directory: a backup copy,
# in-place sed edits, a write to a temp file renamed over the target (as editors save), chmod
# 644, a diff against the backup, and cleanup.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
mkdir -p conf
printf 'listen 8080\nworkers 2\nlog_level info\n' > conf/app.conf
cp -p conf/app.conf conf/app.conf.bak
sed -i 's/^workers .*/workers 4/' conf/app.conf
sed -i -e 's/^log_level .*/log_level debug/' -e '$a timeout 30' conf/app.conf
{ cat conf/app.conf; echo 'max_body 1m'; } > conf/.app.conf.swp
mv conf/.app.conf.swp conf/app.conf
chmod 644 conf/app.conf
diff -u conf/app.conf.bak conf/app.conf > /dev/null
grep -n workers conf/app.conf > /dev/null
rm -rf conf
exit 0
