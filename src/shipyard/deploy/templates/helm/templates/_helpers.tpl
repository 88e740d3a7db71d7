{{/*
Names and labels every object of the chart shares.
*/}}

{{/* The chart's name: nameOverride, else the chart's (the model's or endpoint's). */}}
{{- define "shipyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: fullnameOverride, else the release, suffixed with the chart's name
unless the release's name holds it already. */}}
{{- define "shipyard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "shipyard.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The labels a selector matches: never changed by an upgrade. */}}
{{- define "shipyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shipyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Every object's labels. */}}
{{- define "shipyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shipyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: model-server
app.kubernetes.io/part-of: shipyard
app.kubernetes.io/managed-by: {{ .Release.Service }}
shipyard.dev/model: {{ .Values.model.name | quote }}
shipyard.dev/model-version: {{ .Values.model.version | quote }}
{{- end }}

{{/* The V2 ready route of the served model: 200 once it is loaded and warmed up. */}}
{{- define "shipyard.readyPath" -}}
{{- printf "/v2/models/%s/ready" .Values.model.endpoint }}
{{- end }}

{{/* Seconds Kubernetes waits after SIGTERM: the drain, then time for in-flight requests. */}}
{{- define "shipyard.gracePeriod" -}}
{{- add (int (ceil .Values.server.drainSeconds)) .Values.server.shutdownSeconds }}
{{- end }}

{{/* The drain as the server's --drain: an integer when it is one. */}}
{{- define "shipyard.drain" -}}
{{- $d := .Values.server.drainSeconds }}
{{- if eq (float64 $d) (float64 (int $d)) }}{{ int $d }}{{ else }}{{ $d }}{{ end }}
{{- end }}

{{/* The arguments of the image's `shipyard` entry point: what Context.serve_args() gives. */}}
{{- define "shipyard.serveArgs" -}}
- serve
{{- if eq .Values.model.source "bake" }}
- {{ .Values.model.bundleDir | quote }}
{{- else }}
- {{ .Values.model.uri | quote }}
{{- end }}
- --name
- {{ .Values.model.endpoint | quote }}
- --host
- 0.0.0.0
- --port
- {{ .Values.server.port | quote }}
- --drain
- {{ include "shipyard.drain" . | quote }}
- --digest
- {{ printf "sha256:%s" .Values.model.digest | quote }}
{{- if .Values.model.onnxDigest }}
- --onnx-digest
- {{ printf "sha256:%s" .Values.model.onnxDigest | quote }}
{{- end }}
{{- if .Values.model.trusted }}
- --trusted
{{- end }}
{{- range .Values.server.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* What values.schema.json cannot say: relations between values. */}}
{{- define "shipyard.checks" -}}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.replicas)) }}
{{- fail (printf "autoscaling.maxReplicas (%v) must be at least replicas (%v)" .Values.autoscaling.maxReplicas .Values.replicas) }}
{{- end }}
{{- end }}
