# techniques: T1552.001
# Cloud and cluster credential files read from a home directory: AWS credentials/config, GCP
# application-default credentials, Azure profile, kubeconfig and Docker registry auth. HOME is a
# throwaway /home/sensor-corpus-test (not a real account; removed) with fake contents.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
# A throwaway home under /home (the real path pattern), else under the temp working directory.
HOME=/home/sensor-corpus-test
{ [ -d /home ] && [ ! -e $HOME ]; } || HOME=$PWD/home
export HOME
mkdir -p "$HOME/.aws" "$HOME/.config/gcloud" "$HOME/.azure" "$HOME/.kube" "$HOME/.docker"
printf '[default]\naws_access_key_id = AKIAFAKESENSORCORPUS0\naws_secret_access_key = fake/sensor/corpus\n' > "$HOME/.aws/credentials"
printf '[default]\nregion = eu-west-1\n' > "$HOME/.aws/config"
echo '{"type":"authorized_user","client_id":"fake","refresh_token":"fake"}' > "$HOME/.config/gcloud/application_default_credentials.json"
echo '{"subscriptions":[]}' > "$HOME/.azure/azureProfile.json"
printf 'apiVersion: v1\nkind: Config\nusers: []\n' > "$HOME/.kube/config"
echo '{"auths":{"registry.example":{"auth":"ZmFrZTpmYWtl"}}}' > "$HOME/.docker/config.json"
cat "$HOME/.aws/credentials" > /dev/null
grep -h aws_secret_access_key "$HOME/.aws/credentials" "$HOME/.aws/config" > /dev/null
cat "$HOME/.config/gcloud/application_default_credentials.json" "$HOME/.azure/azureProfile.json" > /dev/null
cat "$HOME/.kube/config" "$HOME/.docker/config.json" > /dev/null
rm -rf "$HOME"
exit 0
