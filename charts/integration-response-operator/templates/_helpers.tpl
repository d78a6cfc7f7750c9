{{- define "iro.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iro.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "iro.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "iro.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "iro.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iro.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iro.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "iro.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "iro.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iro.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The rules the operator needs on its own resources and on Events: nothing more. */}}
{{- define "iro.rules" -}}
- apiGroups: ["apigatewayv2.aws.operator.rs"]
  resources: ["integrationresponses"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["apigatewayv2.aws.operator.rs"]
  resources: ["integrationresponses/status"]
  verbs: ["patch"]
- apiGroups: ["apigatewayv2.aws.operator.rs"]
  resources: ["integrationresponses/finalizers"]
  verbs: ["update"]
# patch: a repeated Event updates its series instead of adding another.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.references.ack.enabled }}
# Read only: spec.integrationRef to ACK's Integration (and the API it may name).
- apiGroups: ["apigatewayv2.services.k8s.aws"]
  resources: ["integrations", "apis"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if .Values.references.crossplane.enabled }}
# Read only: spec.integrationRef to Crossplane's namespaced Integration.
- apiGroups: ["apigatewayv2.aws.m.upbound.io"]
  resources: ["integrations"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end }}

{{/* The REFERENCES value: the providers whose Integrations spec.integrationRef may name. */}}
{{- define "iro.references" -}}
{{- $providers := list }}
{{- if .Values.references.ack.enabled }}{{ $providers = append $providers "ack" }}{{ end }}
{{- if .Values.references.crossplane.enabled }}{{ $providers = append $providers "crossplane" }}{{ end }}
{{- if $providers }}{{ join "," $providers }}{{ else }}none{{ end }}
{{- end }}

{{/* Leader election is on whenever more than one replica runs. */}}
{{- define "iro.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}
