{{/* hookd chart helpers */}}
{{- define "hookd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hookd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hookd
{{- end -}}

{{/* selector labels: (dict "ctx" $ "component" "producer-api") */}}
{{- define "hookd.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hookd.secretName" -}}
{{- if .Values.secret.create -}}
{{ include "hookd.fullname" . }}
{{- else -}}
{{ required "secret.existingSecret is required when secret.create is false" .Values.secret.existingSecret }}
{{- end -}}
{{- end -}}

{{/* image reference: (dict "ctx" $ "image" .Values.image.producerApi) */}}
{{- define "hookd.image" -}}
{{- $repo := .image.repository -}}
{{- with .ctx.Values.image.registry }}{{ $repo = printf "%s/%s" . $repo }}{{ end -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* seconds of a Go-style duration value ("20s", "2m", "500ms", "20"), for the grace-period checks */}}
{{- define "hookd.durationSeconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}{{ div (trimSuffix "ms" $d | int) 1000 }}
{{- else if hasSuffix "s" $d -}}{{ trimSuffix "s" $d | int }}
{{- else if hasSuffix "m" $d -}}{{ mul (trimSuffix "m" $d | int) 60 }}
{{- else if hasSuffix "h" $d -}}{{ mul (trimSuffix "h" $d | int) 3600 }}
{{- else -}}{{ $d | int }}
{{- end -}}
{{- end -}}
