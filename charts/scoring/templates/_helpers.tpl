{{/* The chart's name (app.kubernetes.io/name). */}}
{{- define "scoring.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every object's name: the release's (`mlops deploy prod` names releases scoring-<model>). */}}
{{- define "scoring.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* chart name and version, for helm.sh/chart. */}}
{{- define "scoring.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the pods of this release (immutable on a Deployment: never add to them). */}}
{{- define "scoring.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scoring.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The recommended labels (app.kubernetes.io/*) and the model this release serves. */}}
{{- define "scoring.labels" -}}
helm.sh/chart: {{ include "scoring.chart" . }}
{{ include "scoring.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.model.version | quote }}
app.kubernetes.io/component: scoring
app.kubernetes.io/part-of: mlops
app.kubernetes.io/managed-by: {{ .Release.Service }}
mlops/model: {{ .Values.model.name | quote }}
mlops/model-version: {{ .Values.model.version | quote }}
{{- end }}
