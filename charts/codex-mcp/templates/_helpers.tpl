{{/* Names, labels and the pieces both Deployments share. */}}

{{- define "codex-mcp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "codex-mcp.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "gateway"). */}}
{{- define "codex-mcp.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "codex-mcp.componentLabels" -}}
{{ include "codex-mcp.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "codex-mcp.gatewayName" -}}
{{- printf "%s-gateway" (include "codex-mcp.fullname" .) -}}
{{- end -}}

{{- define "codex-mcp.operatorName" -}}
{{- printf "%s-operator" (include "codex-mcp.fullname" .) -}}
{{- end -}}

{{- define "codex-mcp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "codex-mcp.agentImage" -}}
{{- printf "%s:%s" .Values.agent.image.repository (.Values.agent.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "codex-mcp.credentialsSecret" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" (include "codex-mcp.fullname" .)) -}}
{{- end -}}

{{- define "codex-mcp.createCredentials" -}}
{{- if and (not .Values.credentials.existingSecret) (or .Values.credentials.apiKey .Values.credentials.authJson) -}}true{{- end -}}
{{- end -}}

{{- define "codex-mcp.clientTokensSecret" -}}
{{- .Values.clientTokens.existingSecret | default (printf "%s-client-tokens" (include "codex-mcp.fullname" .)) -}}
{{- end -}}

{{/* The namespace the operator reconciles; empty means all namespaces. */}}
{{- define "codex-mcp.watchNamespace" -}}
{{- if not .Values.operator.watchAllNamespaces -}}
{{- .Values.operator.watchNamespace | default .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Host headers the gateway accepts: its Service's names, the ingress host,
     the HTTPRoute's hostnames, extras. */}}
{{- define "codex-mcp.allowedHosts" -}}
{{- $svc := include "codex-mcp.gatewayName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- if and .Values.ingress.enabled .Values.ingress.host -}}
{{- $hosts = append $hosts .Values.ingress.host -}}
{{- end -}}
{{- if .Values.httpRoute.enabled -}}
{{- $hosts = concat $hosts .Values.httpRoute.hostnames -}}
{{- end -}}
{{- $hosts = concat $hosts .Values.gateway.allowedHosts | uniq -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Env entries from a dict of NAME: value, in name order; unset (null or
     empty) values are left out, so the binary's default applies. Helm holds
     numbers as floats: whole ones are written as integers. */}}
{{- define "codex-mcp.env" -}}
{{- range $name, $value := . }}
{{- if kindIs "float64" $value }}
{{- if eq $value (floor $value) }}{{ $value = int64 $value }}{{ end }}
{{- end }}
{{- if or (kindIs "bool" $value) (kindIs "int64" $value) (kindIs "float64" $value) $value }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Env shared by both components: logging, and the API server address on
     clusters without kube-proxy. */}}
{{- define "codex-mcp.commonEnv" -}}
{{- $env := dict "LOG_LEVEL" .Values.config.LOG_LEVEL "CODEX_MCP_LOG_FORMAT" .Values.logFormat }}
{{- if .Values.testCluster.enabled }}
{{- $_ := set $env "KUBERNETES_SERVICE_HOST" .Values.testCluster.apiServerHost }}
{{- $_ := set $env "KUBERNETES_SERVICE_PORT" .Values.testCluster.apiServerPort }}
{{- end }}
{{- include "codex-mcp.env" $env }}
{{- end -}}

{{/* Pod-level settings both Deployments share: (dict "ctx" $ "component" .Values.gateway). */}}
{{- define "codex-mcp.podCommon" -}}
{{- $ := .ctx -}}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
{{- if $.Values.testCluster.enabled }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod annotations: Prometheus scraping plus the user's. */}}
{{- define "codex-mcp.podAnnotations" -}}
{{- $annotations := dict }}
{{- if .ctx.Values.metrics.podAnnotations }}
{{- $annotations = dict "prometheus.io/scrape" "true" "prometheus.io/port" (printf "%d" (int64 .port)) "prometheus.io/path" "/metrics" }}
{{- end }}
{{- with merge (deepCopy (.extra | default dict)) $annotations }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{/* HTTP probes on the component's port. */}}
{{- define "codex-mcp.probes" -}}
livenessProbe:
  httpGet: {path: /health, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /ready, port: http}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* The client token file, base64: the lines from values, else the token
     generated at install (found again by `lookup` on upgrades, so clients
     keep working), else a new one. Computed once per render, so that the
     gateway's checksum annotation sees the same file as the Secret. */}}
{{- define "codex-mcp.clientTokensFile" -}}
{{- if not (hasKey .Values.clientTokens "_file") -}}
{{- $file := "" -}}
{{- if .Values.clientTokens.tokens -}}
{{- $file = printf "%s\n" (join "\n" .Values.clientTokens.tokens) | b64enc -}}
{{- else -}}
{{- $current := lookup "v1" "Secret" .Release.Namespace (include "codex-mcp.clientTokensSecret" .) -}}
{{- $file = dig "data" .Values.clientTokens.secretKey "" $current -}}
{{- if not $file -}}
{{- $file = printf "%s default\n" (randAlphaNum 48) | b64enc -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values.clientTokens "_file" $file -}}
{{- end -}}
{{- index .Values.clientTokens "_file" -}}
{{- end -}}

{{/* The gateway's repository rules file (CODEX_MCP_REPOSITORIES): one line
     per tenant, `TENANT SECRET|- PATTERN... [default=URL[#REF]]`. */}}
{{- define "codex-mcp.repositoryRules" -}}
{{- range .Values.repositories }}
{{ .tenant }} {{ default "-" .secret }} {{ join " " .allow }}{{ with .default }} default={{ . }}{{ end }}
{{- end }}
{{- end -}}
