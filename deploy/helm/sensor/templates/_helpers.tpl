{{- define "sensor.labels" -}}
app.kubernetes.io/name: sensor
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sensor.selector" -}}
app.kubernetes.io/name: sensor
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
