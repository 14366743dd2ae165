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

{{/* The image: pinned by digest (repository@sha256:...) when image.digest is set, else repository:tag. */}}
{{- define "scoring.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}
{{- end }}

{{/* What the pods read besides their image: the model, the server's settings and where the scoring keys come
from. Its sha256 is the pod template's checksum/config annotation, so a change of any of them (a new Secret
name included) rolls the pods. The keys inside the Secret are not visible to helm: after rotating them,
`kubectl rollout restart deployment/<release>`. */}}
{{- define "scoring.config" -}}
{{- toYaml (dict "model" .Values.model "workers" .Values.workers "shutdown" .Values.shutdown
    "containerPort" .Values.containerPort "auth" .Values.auth) }}
{{- end }}
