{{/*
Names. Kubernetes names are DNS labels (RFC 1123): at most 63 characters. Suffixes such as "-rollout-gate" (13) and
"-agent-metrics" (14) are appended to the fullname, so the fullname is cut at 63 - 14 = 49 characters to keep every
derived name valid.
*/}}

{{/* Chart name, or .Values.nameOverride. */}}
{{- define "stella.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 49 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name: .Values.fullnameOverride, else the release name when it already contains the chart name
(release "stella" gives "stella", not "stella-stella"), else "<release>-<chart>".
*/}}
{{- define "stella.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 49 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 49 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 49 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "stella-0.1.0" for the helm.sh/chart label ("+" is not allowed in label values). */}}
{{- define "stella.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: the immutable subset used in Deployment/DaemonSet selectors and Service selectors.
Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "stella.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stella.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Common labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/) plus helm.sh/chart and
.Values.commonLabels. Call with (dict "ctx" $ "component" "operator").
*/}}
{{- define "stella.labels" -}}
{{ include "stella.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: stella
helm.sh/chart: {{ include "stella.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Object names, one place so templates, RBAC resourceNames and operator settings cannot drift apart. */}}
{{- define "stella.operator.fullname" -}}{{ include "stella.fullname" . }}-operator{{- end -}}
{{- define "stella.agent.fullname" -}}{{ include "stella.fullname" . }}-agent{{- end -}}
{{- define "stella.metricsService" -}}{{ include "stella.fullname" . }}-metrics{{- end -}}
{{- define "stella.agentMetricsService" -}}{{ include "stella.fullname" . }}-agent-metrics{{- end -}}
{{- define "stella.webhookService" -}}{{ include "stella.fullname" . }}-webhook{{- end -}}
{{- define "stella.ingestService" -}}{{ include "stella.fullname" . }}-ingest{{- end -}}
{{- define "stella.webhookConfigName" -}}{{ include "stella.fullname" . }}-rollout-gate{{- end -}}
{{- define "stella.webhookTlsSecret" -}}{{ include "stella.fullname" . }}-webhook-tls{{- end -}}
{{- define "stella.webhookCertificate" -}}{{ include "stella.fullname" . }}-webhook{{- end -}}
{{- define "stella.webhookIssuer" -}}{{ include "stella.fullname" . }}-selfsigned{{- end -}}

{{/* ServiceAccount names: the override, else the generated name, else "default" when not created. */}}
{{- define "stella.operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stella.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stella.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (include "stella.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Image reference: repository@digest when a digest is pinned (immutable, what admission policies verify), else
repository:tag with the tag defaulting to the chart's appVersion. Call with (dict "image" .Values.operator.image "ctx" $).
*/}}
{{- define "stella.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Webhook TLS mode the operator is told about: "cert-manager" or "self-signed". */}}
{{- define "stella.webhookCertMode" -}}
{{- if .Values.webhook.certManager.enabled -}}cert-manager{{- else -}}self-signed{{- end -}}
{{- end -}}

{{/* The agent's gRPC target: the ingest Service's fully qualified DNS name and port. */}}
{{- define "stella.ingestAddr" -}}
{{- printf "%s.%s.svc.%s:%d" (include "stella.ingestService" .) .Release.Namespace .Values.clusterDomain (int .Values.operator.ports.ingest) -}}
{{- end -}}
