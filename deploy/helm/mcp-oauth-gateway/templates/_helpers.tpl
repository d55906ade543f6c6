{{/* Names: every object is <fullname>-<part>. A StatefulSet's name (<fullname>-mcp-<server>, the server's name at
most 20 characters) must leave room for "-" and a 10-character revision hash in a 63-character label, so the prefix
is cut to 27. */}}
{{- define "gw.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 27 | trimSuffix "-" }}{{ else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 27 | trimSuffix "-" }}{{ end }}
{{- end }}

{{- define "gw.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of one part (authserver, redis, mcp-<server>). */}}
{{- define "gw.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "gw.portSuffix" -}}{{ if .Values.port }}:{{ .Values.port }}{{ end }}{{- end }}

{{- define "gw.authHost" -}}
{{- if eq .Values.layout "subdomain" }}{{ .Values.authHost | default (printf "auth.%s" .Values.domain) | lower }}{{ else }}{{ .Values.domain | lower }}{{ end }}
{{- end }}

{{/* The issuer: exactly what clients see, no trailing slash. */}}
{{- define "gw.issuer" -}}
{{ .Values.scheme }}://{{ include "gw.authHost" . }}{{ include "gw.portSuffix" . }}
{{- end }}

{{/* An MCP server's public host and its canonical resource URL; call with (dict "root" $ "name" $name). */}}
{{- define "gw.serverHost" -}}
{{- if eq .root.Values.layout "subdomain" }}{{ printf "%s.%s" .name .root.Values.domain | lower }}{{ else }}{{ .root.Values.domain | lower }}{{ end }}
{{- end }}

{{- define "gw.resource" -}}
{{- if eq .root.Values.layout "subdomain" -}}
{{ .root.Values.scheme }}://{{ include "gw.serverHost" . }}{{ include "gw.portSuffix" .root }}/mcp
{{- else -}}
{{ include "gw.issuer" .root }}/{{ .name }}/mcp
{{- end }}
{{- end }}

{{/* The TLS section of an IngressRoute, or nothing (plain HTTP). */}}
{{- define "gw.tls" -}}
{{- if .Values.traefik.tls.secretName }}
tls:
  secretName: {{ .Values.traefik.tls.secretName }}
{{- else if .Values.traefik.tls.certResolver }}
tls:
  certResolver: {{ .Values.traefik.tls.certResolver }}
{{- end }}
{{- end }}

{{/* Restricted Pod Security: the container half. */}}
{{- define "gw.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop: [ALL]
{{- end }}

{{- define "gw.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* Traefik's pods, as a NetworkPolicy peer. */}}
{{- define "gw.traefikPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Values.traefik.namespace }}
  podSelector:
    matchLabels:
      {{- toYaml .Values.traefik.podSelector | nindent 6 }}
{{- end }}

{{/* The one store the authserver replicas share; several replicas need Redis. */}}
{{- define "gw.checkStore" -}}
{{- $r := .Values.authserver.redis }}
{{- if and .Values.redis.enabled (or $r.url $r.addrs $r.fromSecret) }}
{{- fail "redis.enabled starts a Redis of the chart's own: leave authserver.redis empty with it, or turn it off" }}
{{- end }}
{{- if and $r.fromSecret (not .Values.authserver.existingSecret) }}
{{- fail "authserver.redis.fromSecret: REDIS_URL is read from authserver.existingSecret, which is not set" }}
{{- end }}
{{- /* Without Redis the authserver would fall back to a file of its own in each pod: replicas that do not share
clients, grants or keys. */}}
{{- if not (or .Values.redis.enabled $r.url $r.addrs $r.fromSecret) }}
{{- fail "the authserver replicas share one Redis: set authserver.redis.url (or addrs), or REDIS_URL in authserver.existingSecret with authserver.redis.fromSecret=true, or redis.enabled=true to try the chart out" }}
{{- end }}
{{- end }}
