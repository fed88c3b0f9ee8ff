{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "probed.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless the release name already has it. */}}
{{- define "probed.fullname" -}}
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

{{- define "probed.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "probed.selectorLabels" -}}
app.kubernetes.io/name: {{ include "probed.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "probed.labels" -}}
helm.sh/chart: {{ include "probed.chart" . }}
{{ include "probed.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "probed.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "probed.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "probed.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "probed.configMapName" -}}
{{- default (include "probed.fullname" .) .Values.existingConfigMap }}
{{- end }}

{{- define "probed.configKey" -}}
{{- if .Values.existingConfigMap }}{{ .Values.existingConfigMapKey }}{{ else }}probes.yaml{{ end }}
{{- end }}

{{/* The config file as the chart writes it: a string verbatim, a map as YAML. */}}
{{- define "probed.configText" -}}
{{- if kindIs "string" .Values.config }}{{ .Values.config }}{{ else }}{{ toYaml .Values.config }}{{ end }}
{{- end }}

{{/* The pod template, shared by the Deployment (shards: 1) and the StatefulSet (shards > 1). */}}
{{- define "probed.podTemplate" -}}
{{- if gt (int .Values.replicasPerProbe) (int .Values.shards) }}
{{- fail (printf "replicasPerProbe (%d) must be at most shards (%d): each copy of a probe runs on a shard of its own" (int .Values.replicasPerProbe) (int .Values.shards)) }}
{{- end }}
metadata:
  labels:
    {{- include "probed.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if not .Values.existingConfigMap }}
    checksum/config: {{ include "probed.configText" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "probed.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: probed
      image: {{ include "probed.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config=/etc/probed/config/probes.yaml
        - --listen=0.0.0.0:9470
        - --log-format={{ .Values.logFormat }}
        - --log-level={{ .Values.logLevel }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: PROBED_STATE_DIR
          value: /var/lib/probed
        {{- if gt (int .Values.shards) 1 }}
        - name: PROBED_SHARDS
          value: {{ .Values.shards | quote }}
        {{- end }}
        {{- if gt (int .Values.replicasPerProbe) 1 }}
        - name: PROBED_REPLICAS_PER_PROBE
          value: {{ .Values.replicasPerProbe | quote }}
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or .Values.existingSecret .Values.envFrom }}
      envFrom:
        {{- with .Values.existingSecret }}
        - secretRef:
            name: {{ . }}
        {{- end }}
        {{- with .Values.envFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: http
          containerPort: 9470
          protocol: TCP
      livenessProbe:
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/probed/config
          readOnly: true
        - name: state
          mountPath: /var/lib/probed
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "probed.configMapName" . }}
        items:
          - key: {{ include "probed.configKey" . }}
            path: probes.yaml
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if le (int .Values.shards) 1 }}
    - name: state
      {{- if .Values.persistence.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim }}
      {{- else if .Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ include "probed.fullname" . }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
