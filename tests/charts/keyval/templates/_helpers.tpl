{{/*
Expand the name of the chart.
*/}}
{{- define "keyval.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters (some Kubernetes name fields are limited to
that). A release name that already contains the chart name is used as is.
*/}}
{{- define "keyval.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the chart label.
*/}}
{{- define "keyval.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "keyval.labels" -}}
helm.sh/chart: {{ include "keyval.chart" . }}
{{ include "keyval.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "keyval.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyval.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The store's own labels (selector) and the exporter's.
*/}}
{{- define "keyval.storeSelectorLabels" -}}
{{ include "keyval.selectorLabels" . }}
app.kubernetes.io/component: store
{{- end }}

{{- define "keyval.exporterSelectorLabels" -}}
{{ include "keyval.selectorLabels" . }}
app.kubernetes.io/component: exporter
{{- end }}

{{/*
The service account to use.
*/}}
{{- define "keyval.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keyval.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The headless service governing the StatefulSet.
*/}}
{{- define "keyval.headlessServiceName" -}}
{{- printf "%s-headless" (include "keyval.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keyval.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
