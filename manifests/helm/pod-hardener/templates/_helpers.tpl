{{/* The namespace of every namespaced object. */}}
{{- define "pod-hardener.namespace" -}}
{{- .Values.namespace.name | default .Release.Namespace -}}
{{- end -}}

{{/* The labels of every object but the Namespace (the same as manifests/). */}}
{{- define "pod-hardener.labels" -}}
app.kubernetes.io/name: pod-hardener
app.kubernetes.io/part-of: pod-hardener
{{- end -}}

{{/* The Pods' labels and the selectors. */}}
{{- define "pod-hardener.selector" -}}
app.kubernetes.io/name: pod-hardener
{{- end -}}

{{/* The image reference: by digest when one is given, else by tag. */}}
{{- define "pod-hardener.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* What the two webhook configurations share: the Service they call, the CA they trust. */}}
{{- define "pod-hardener.clientConfig" -}}
service:
  name: pod-hardener
  namespace: {{ include "pod-hardener.namespace" .root }}
  path: {{ .path }}
  port: 443
{{- with .root.Values.certificate.caBundle }}
caBundle: {{ . }}
{{- end }}
{{- end -}}

{{/* The namespaces neither webhook is called for: the configured ones and the chart's own. */}}
{{- define "pod-hardener.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- range .Values.webhooks.excludedNamespaces }}
      - {{ . | quote }}
      {{- end }}
      - {{ include "pod-hardener.namespace" . | quote }}
{{- end -}}

{{/* cainjector's annotation, with cert-manager. */}}
{{- define "pod-hardener.injectCA" -}}
{{- if .Values.certificate.certManager.enabled }}
annotations:
  cert-manager.io/inject-ca-from: {{ include "pod-hardener.namespace" . }}/pod-hardener-serving
{{- end }}
{{- end -}}
