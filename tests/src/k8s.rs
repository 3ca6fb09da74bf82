//! A structural schema of the Kubernetes objects deploy/ uses: the subset of the Kubernetes (and
//! cert-manager, Prometheus Operator) API that the manifests need, as serde types that reject
//! unknown fields. A misspelt field (`readinesProbe`), a wrong type or a kind we do not know
//! fails to parse, as it would fail `kubectl apply --validate=strict`. kubeconform is not
//! installable here; this is the schema check the tests can always run. Add a field here when a
//! manifest needs it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
}

/// An object: `apiVersion`, `kind`, `metadata` and the kind's own typed body.
#[derive(Debug)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Namespace,
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(ServiceSpec),
    Deployment(DeploymentSpec),
    StatefulSet(StatefulSetSpec),
    NetworkPolicy(NetworkPolicySpec),
    PodDisruptionBudget(PdbSpec),
    ServiceMonitor(ServiceMonitorSpec),
    PrometheusRule(PrometheusRuleSpec),
    Certificate(CertificateSpec),
    Issuer(IssuerSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WithSpec<T> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMeta,
    spec: T,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NoSpec {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceAccount {
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMap {
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Secret {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub external_traffic_policy: Option<String>,
    pub selector: Labels,
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target_port: IntOrString,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub revision_history_limit: Option<u32>,
    pub selector: LabelSelector,
    #[serde(default)]
    pub strategy: Option<Strategy>,
    pub template: PodTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatefulSetSpec {
    pub service_name: String,
    #[serde(default)]
    pub replicas: Option<u32>,
    pub selector: LabelSelector,
    pub template: PodTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Strategy {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollingUpdate {
    pub max_surge: IntOrString,
    pub max_unavailable: IntOrString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodTemplate {
    pub metadata: TemplateMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TemplateMeta {
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
    #[serde(default)]
    pub enable_service_links: Option<bool>,
    #[serde(default)]
    pub termination_grace_period_seconds: Option<u32>,
    #[serde(default)]
    pub security_context: Option<PodSecurityContext>,
    pub containers: Vec<Container>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub topology_spread_constraints: Vec<TopologySpread>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologySpread {
    pub max_skew: u32,
    pub topology_key: String,
    pub when_unsatisfiable: String,
    pub label_selector: LabelSelector,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default)]
    pub run_as_group: Option<i64>,
    #[serde(default)]
    pub fs_group: Option<i64>,
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub type_: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub image_pull_policy: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    pub resources: Resources,
    #[serde(default)]
    pub security_context: Option<SecurityContext>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: String,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Probe {
    pub http_get: HttpGet,
    #[serde(default)]
    pub initial_delay_seconds: Option<u32>,
    #[serde(default)]
    pub period_seconds: Option<u32>,
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    #[serde(default)]
    pub success_threshold: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpGet {
    pub path: String,
    pub port: IntOrString,
    #[serde(default)]
    pub scheme: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, IntOrString>,
    #[serde(default)]
    pub limits: BTreeMap<String, IntOrString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default)]
    pub run_as_non_root: Option<bool>,
    #[serde(default)]
    pub run_as_user: Option<i64>,
    #[serde(default)]
    pub run_as_group: Option<i64>,
    #[serde(default)]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default)]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default)]
    pub privileged: Option<bool>,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub seccomp_profile: Option<SeccompProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub drop: Vec<String>,
    #[serde(default)]
    pub add: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub sub_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(default)]
    pub config_map: Option<ConfigMapVolume>,
    #[serde(default)]
    pub secret: Option<SecretVolume>,
    #[serde(default)]
    pub empty_dir: Option<EmptyDir>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapVolume {
    pub name: String,
    #[serde(default)]
    pub default_mode: Option<u32>,
    #[serde(default)]
    pub items: Vec<KeyToPath>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretVolume {
    pub secret_name: String,
    #[serde(default)]
    pub default_mode: Option<u32>,
    #[serde(default)]
    pub items: Vec<KeyToPath>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDir {
    #[serde(default)]
    pub medium: Option<String>,
    #[serde(default)]
    pub size_limit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    pub pod_selector: LabelSelector,
    pub policy_types: Vec<String>,
    #[serde(default)]
    pub ingress: Vec<NetworkPolicyRule>,
    #[serde(default)]
    pub egress: Vec<NetworkPolicyRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicyRule {
    #[serde(default, alias = "to")]
    pub from: Vec<NetworkPolicyPeer>,
    #[serde(default)]
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub pod_selector: Option<LabelSelector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    pub port: IntOrString,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PdbSpec {
    #[serde(default)]
    pub min_available: Option<IntOrString>,
    #[serde(default)]
    pub max_unavailable: Option<IntOrString>,
    #[serde(default)]
    pub unhealthy_pod_eviction_policy: Option<String>,
    pub selector: LabelSelector,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    pub endpoints: Vec<ScrapeEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScrapeEndpoint {
    pub port: String,
    pub path: String,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub scrape_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<AlertRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertRule {
    pub alert: String,
    pub expr: String,
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    #[serde(default, rename = "isCA")]
    pub is_ca: Option<bool>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub renew_before: Option<String>,
    #[serde(default)]
    pub private_key: Option<CertificateKey>,
    #[serde(default)]
    pub usages: Vec<String>,
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub dns_names: Vec<String>,
    pub issuer_ref: IssuerRef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateKey {
    pub algorithm: String,
    #[serde(default)]
    pub size: Option<u32>,
    #[serde(default)]
    pub rotation_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerRef {
    #[serde(default)]
    pub group: Option<String>,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerSpec {
    #[serde(default)]
    pub self_signed: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub ca: Option<CaIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaIssuer {
    pub secret_name: String,
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

fn with_spec<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(ObjectMeta, T), String> {
    typed::<WithSpec<T>>(v).map(|w| (w.metadata, w.spec))
}

/// Parses one manifest document against the schema: known `apiVersion`/`kind`, every field known
/// and of the right type.
pub fn parse(v: &Value) -> Result<Object, String> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).ok_or("no apiVersion")?.to_string();
    let kind = v.get("kind").and_then(Value::as_str).ok_or("no kind")?.to_string();
    let (metadata, body) = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => (typed::<NoSpec>(v)?.metadata, Body::Namespace),
        ("v1", "ServiceAccount") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields, rename_all = "camelCase")]
            struct Sa {
                #[allow(dead_code)]
                api_version: String,
                #[allow(dead_code)]
                kind: String,
                metadata: ObjectMeta,
                #[serde(default)]
                automount_service_account_token: Option<bool>,
            }
            let sa = typed::<Sa>(v)?;
            (
                sa.metadata,
                Body::ServiceAccount(ServiceAccount {
                    automount_service_account_token: sa.automount_service_account_token,
                }),
            )
        }
        ("v1", "ConfigMap") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields, rename_all = "camelCase")]
            struct Cm {
                #[allow(dead_code)]
                api_version: String,
                #[allow(dead_code)]
                kind: String,
                metadata: ObjectMeta,
                #[serde(default)]
                data: BTreeMap<String, String>,
            }
            let cm = typed::<Cm>(v)?;
            (cm.metadata, Body::ConfigMap(ConfigMap { data: cm.data }))
        }
        ("v1", "Secret") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields, rename_all = "camelCase")]
            struct S {
                #[allow(dead_code)]
                api_version: String,
                #[allow(dead_code)]
                kind: String,
                metadata: ObjectMeta,
                #[serde(flatten)]
                secret: Secret,
            }
            let s = typed::<S>(v)?;
            (s.metadata, Body::Secret(s.secret))
        }
        ("v1", "Service") => with_spec(v).map(|(m, s)| (m, Body::Service(s)))?,
        ("apps/v1", "Deployment") => with_spec(v).map(|(m, s)| (m, Body::Deployment(s)))?,
        ("apps/v1", "StatefulSet") => with_spec(v).map(|(m, s)| (m, Body::StatefulSet(s)))?,
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            with_spec(v).map(|(m, s)| (m, Body::NetworkPolicy(s)))?
        }
        ("policy/v1", "PodDisruptionBudget") => {
            with_spec(v).map(|(m, s)| (m, Body::PodDisruptionBudget(s)))?
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            with_spec(v).map(|(m, s)| (m, Body::ServiceMonitor(s)))?
        }
        ("monitoring.coreos.com/v1", "PrometheusRule") => {
            with_spec(v).map(|(m, s)| (m, Body::PrometheusRule(s)))?
        }
        ("cert-manager.io/v1", "Certificate") => with_spec(v).map(|(m, s)| (m, Body::Certificate(s)))?,
        ("cert-manager.io/v1", "Issuer") => with_spec(v).map(|(m, s)| (m, Body::Issuer(s)))?,
        (a, k) => return Err(format!("unknown apiVersion/kind {a}/{k}")),
    };
    Ok(Object { api_version, kind, metadata, body })
}

/// A kustomization.yaml (the fields deploy/ uses).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub labels: Vec<Value>,
    #[serde(default)]
    pub config_map_generator: Vec<Generator>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub patches: Vec<Patch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Generator {
    pub name: String,
    pub files: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    pub name: String,
    #[serde(default)]
    pub new_name: Option<String>,
    #[serde(default)]
    pub new_tag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Patch {
    pub target: PatchTarget,
    pub patch: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchTarget {
    pub kind: String,
    pub name: String,
}

/// A DNS-1123 label (Kubernetes object, container and port names).
pub fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
