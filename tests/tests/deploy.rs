//! deploy/: the Kubernetes manifests, the Dockerfile and the Grafana dashboard.
//!
//! Every manifest is parsed and checked against a structural schema (tests/src/k8s.rs: known
//! kinds, no unknown fields), then against moat itself: the ports, probes and files the manifests
//! reference exist in the pod and in moat's config, the security settings are there, every
//! metric an alert or a panel uses is in the README catalogue, and `moat check` accepts the
//! ConfigMap contents with a throwaway certificate in the Secret's place. The overlays are
//! rendered with `kubectl kustomize` when kubectl is installed and checked the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use moat_e2e::catalogue::{self, repo_root};
use moat_e2e::k8s::{self, Body, Container, DeploymentSpec, IntOrString, Labels, Object};
use moat_e2e::{moat_command, Pki};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

fn yaml_docs(text: &str, ctx: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{ctx}: not YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn parse_all(docs: &[Value], ctx: &str) -> Vec<Object> {
    docs.iter()
        .map(|d| {
            k8s::parse(d).unwrap_or_else(|e| {
                let name = d.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
                panic!("{ctx}: {} {name}: schema: {e}", d.get("kind").and_then(Value::as_str).unwrap_or("?"))
            })
        })
        .collect()
}

fn kustomization(dir: &Path) -> k8s::Kustomization {
    let path = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = yaml_docs(&text, &path.display().to_string()).pop().expect("one document");
    let k: k8s::Kustomization =
        serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: schema: {e}", path.display()));
    assert_eq!(
        (k.api_version.as_str(), k.kind.as_str()),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    );
    for r in &k.resources {
        assert!(dir.join(r).exists(), "{}: resource {r} does not exist", path.display());
    }
    for p in &k.patches {
        let ops = yaml_docs(&p.patch, &format!("{}: patch of {}", path.display(), p.target.name));
        for op in ops.iter().flat_map(|o| o.as_array().cloned().unwrap_or_default()) {
            assert!(
                op.get("op").and_then(Value::as_str).is_some()
                    && op.get("path").and_then(Value::as_str).is_some(),
                "{}: JSON patch operation without op/path: {op}",
                path.display()
            );
        }
    }
    k
}

/// The base as kustomize would build it, without kubectl: its resources and its generated
/// ConfigMaps (generator name, one key per file).
fn base_bundle() -> Vec<Object> {
    let dir = deploy_dir().join("kustomize/base");
    let k = kustomization(&dir);
    let mut docs = Vec::new();
    for r in &k.resources {
        let path = dir.join(r);
        docs.extend(yaml_docs(&std::fs::read_to_string(&path).unwrap(), &path.display().to_string()));
    }
    for g in &k.config_map_generator {
        let data: serde_json::Map<String, Value> = g
            .files
            .iter()
            .map(|f| {
                let name = Path::new(f).file_name().unwrap().to_string_lossy().into_owned();
                (name, Value::from(std::fs::read_to_string(dir.join(f)).unwrap()))
            })
            .collect();
        docs.push(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g.name}, "data": data}));
    }
    parse_all(&docs, "base")
}

/// `kubectl kustomize` of an overlay, or `None` when kubectl is not installed.
fn render(overlay: &str) -> Option<Vec<Object>> {
    let dir = deploy_dir().join("kustomize/overlays").join(overlay);
    kustomization(&dir);
    let out = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(o) => o,
        Err(_) => {
            eprintln!("kubectl not installed: overlay {overlay} checked without rendering");
            return None;
        }
    };
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    Some(parse_all(&yaml_docs(&text, overlay), overlay))
}

fn find<'a>(bundle: &'a [Object], kind: &str, name: &str) -> Option<&'a Object> {
    bundle.iter().find(|o| o.kind == kind && o.metadata.name == name)
}

fn subset(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn port_of(c: &Container, p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(n) => {
            c.ports.iter().find(|cp| i64::from(cp.container_port) == *n).map(|cp| cp.container_port)
        }
        IntOrString::Str(s) => c.ports.iter().find(|cp| &cp.name == s).map(|cp| cp.container_port),
    }
}

/// The files a volume provides: `Some(keys)` for ConfigMap and Secret volumes (`items` if given).
fn volume_keys(
    bundle: &[Object],
    spec: &DeploymentSpec,
    volume: &str,
    ctx: &str,
) -> Option<BTreeSet<String>> {
    let v = spec.template.spec.volumes.iter().find(|v| v.name == volume)?;
    if let Some(cm) = &v.config_map {
        let obj = find(bundle, "ConfigMap", &cm.name)
            .unwrap_or_else(|| panic!("{ctx}: ConfigMap {} not defined", cm.name));
        let Body::ConfigMap(data) = &obj.body else { unreachable!() };
        let keys: BTreeSet<String> = data.data.keys().cloned().collect();
        for item in &cm.items {
            assert!(
                keys.contains(&item.key),
                "{ctx}: volume {volume}: ConfigMap {} has no key {}",
                cm.name,
                item.key
            );
        }
        return Some(if cm.items.is_empty() {
            keys
        } else {
            cm.items.iter().map(|i| i.path.clone()).collect()
        });
    }
    if let Some(s) = &v.secret {
        // A Secret in the bundle, or one that a cert-manager Certificate writes.
        let keys: BTreeSet<String> = match find(bundle, "Secret", &s.secret_name).map(|o| &o.body) {
            Some(Body::Secret(sec)) => sec.data.keys().chain(sec.string_data.keys()).cloned().collect(),
            _ => {
                let issued = bundle
                    .iter()
                    .any(|o| matches!(&o.body, Body::Certificate(c) if c.secret_name == s.secret_name));
                assert!(
                    issued,
                    "{ctx}: Secret {} is neither defined nor issued by a Certificate",
                    s.secret_name
                );
                ["tls.crt", "tls.key", "ca.crt"].map(String::from).into()
            }
        };
        for item in &s.items {
            assert!(
                keys.contains(&item.key),
                "{ctx}: volume {volume}: Secret {} has no key {}",
                s.secret_name,
                item.key
            );
        }
        return Some(if s.items.is_empty() {
            keys
        } else {
            s.items.iter().map(|i| i.path.clone()).collect()
        });
    }
    None
}

/// Resolves `path` (absolute, in the container) to (volume, file name) through the mounts.
fn mounted<'a>(c: &'a Container, path: &Path) -> Option<(&'a str, String)> {
    c.volume_mounts.iter().find_map(|m| {
        let rest = path.strip_prefix(&m.mount_path).ok()?;
        Some((m.name.as_str(), rest.to_string_lossy().into_owned()))
    })
}

/// `a/b/../c` → `a/c` (the kernel resolves `..` physically; the mount directories are real).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The moat config the pod runs: (path in the container, text).
fn moat_config<'a>(
    bundle: &'a [Object],
    spec: &DeploymentSpec,
    moat: &Container,
    ctx: &str,
) -> (PathBuf, &'a str) {
    let args = if moat.args.is_empty() { &moat.command } else { &moat.args };
    let i = args
        .iter()
        .position(|a| a == "-c" || a == "--config")
        .unwrap_or_else(|| panic!("{ctx}: moat args lack -c"));
    assert_eq!(args.first().map(String::as_str), Some("run"), "{ctx}: moat must be started with `run`");
    let path = PathBuf::from(&args[i + 1]);
    let (volume, key) = mounted(moat, &path)
        .unwrap_or_else(|| panic!("{ctx}: {} is not on a mounted volume", path.display()));
    let v = spec.template.spec.volumes.iter().find(|v| v.name == volume).unwrap();
    let cm =
        v.config_map.as_ref().unwrap_or_else(|| panic!("{ctx}: moat's config must come from a ConfigMap"));
    let Some(Body::ConfigMap(data)) = find(bundle, "ConfigMap", &cm.name).map(|o| &o.body) else {
        panic!("{ctx}: ConfigMap {} not defined", cm.name)
    };
    let text = data.data.get(&key).unwrap_or_else(|| panic!("{ctx}: ConfigMap {} has no {key}", cm.name));
    (path, text)
}

fn port_in(bind: &str) -> u16 {
    bind.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("bad bind {bind}"))
}

/// Everything the test checks about one bundle (the base, or a rendered overlay).
fn check_bundle(bundle: &[Object], ctx: &str, rendered: bool) {
    let mut seen = BTreeSet::new();
    for o in bundle {
        assert!(k8s::is_dns_label(&o.metadata.name, 63), "{ctx}: bad name {:?}", o.metadata.name);
        assert!(
            seen.insert((o.kind.clone(), o.metadata.name.clone())),
            "{ctx}: {} {} twice",
            o.kind,
            o.metadata.name
        );
    }
    let deployment =
        find(bundle, "Deployment", "moat").unwrap_or_else(|| panic!("{ctx}: no Deployment moat"));
    let Body::Deployment(spec) = &deployment.body else { unreachable!() };
    let pod = &spec.template.spec;
    let template_labels = &spec.template.metadata.labels;
    assert!(
        subset(&spec.selector.match_labels, template_labels),
        "{ctx}: Deployment selector does not match its pods"
    );

    // Hardening: every container non-root, no privilege escalation, read-only root, no
    // capabilities, seccomp RuntimeDefault; resources requested and memory limited.
    let pod_sc =
        pod.security_context.as_ref().unwrap_or_else(|| panic!("{ctx}: pod securityContext missing"));
    assert_eq!(pod_sc.run_as_non_root, Some(true), "{ctx}: pod runAsNonRoot");
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault"),
        "{ctx}: pod seccomp"
    );
    assert_eq!(pod.automount_service_account_token, Some(false), "{ctx}: no API token in the pod");
    for c in &pod.containers {
        let cctx = format!("{ctx}: container {}", c.name);
        assert!(k8s::is_dns_label(&c.name, 63), "{cctx}: bad name");
        let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{cctx}: securityContext missing"));
        assert_eq!(sc.run_as_non_root, Some(true), "{cctx}: runAsNonRoot");
        assert!(sc.run_as_user.is_some_and(|u| u > 0), "{cctx}: numeric non-root runAsUser");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{cctx}: allowPrivilegeEscalation");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{cctx}: readOnlyRootFilesystem");
        assert_ne!(sc.privileged, Some(true), "{cctx}: privileged");
        let caps = sc.capabilities.as_ref().unwrap_or_else(|| panic!("{cctx}: capabilities"));
        assert_eq!(caps.drop, ["ALL"], "{cctx}: drop ALL capabilities");
        assert!(caps.add.is_empty(), "{cctx}: adds capabilities");
        assert_eq!(
            sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault"),
            "{cctx}: seccomp"
        );
        for r in ["cpu", "memory"] {
            assert!(c.resources.requests.contains_key(r), "{cctx}: requests.{r}");
        }
        assert!(c.resources.limits.contains_key("memory"), "{cctx}: limits.memory");
        assert!(
            c.image_pull_policy.as_deref().is_none_or(|p| ["Always", "IfNotPresent", "Never"].contains(&p)),
            "{cctx}: imagePullPolicy"
        );
        for p in &c.ports {
            assert!(k8s::is_dns_label(&p.name, 15), "{cctx}: port name {:?} (≤ 15, lowercase)", p.name);
            assert!(
                p.protocol.as_deref().is_none_or(|x| ["TCP", "UDP", "SCTP"].contains(&x)),
                "{cctx}: protocol"
            );
        }
        for m in &c.volume_mounts {
            assert!(
                pod.volumes.iter().any(|v| v.name == m.name),
                "{cctx}: mounts undefined volume {}",
                m.name
            );
            // A subPath mount is never updated: it would defeat ConfigMap/Secret reloads.
            assert!(m.sub_path.is_none(), "{cctx}: subPath mount {}", m.mount_path);
            volume_keys(bundle, spec, &m.name, &cctx);
        }
        for (which, probe) in [
            ("startup", &c.startup_probe),
            ("liveness", &c.liveness_probe),
            ("readiness", &c.readiness_probe),
        ] {
            if let Some(p) = probe {
                assert!(
                    port_of(c, &p.http_get.port).is_some(),
                    "{cctx}: {which} probe port {:?} is not a container port",
                    p.http_get.port
                );
            }
        }
    }
    for v in &pod.volumes {
        let mode = v
            .config_map
            .as_ref()
            .and_then(|c| c.default_mode)
            .or(v.secret.as_ref().and_then(|s| s.default_mode));
        assert!(
            mode.is_none_or(|m| m <= 0o777),
            "{ctx}: volume {} defaultMode {mode:?} is not a file mode",
            v.name
        );
        assert!(
            pod.containers.iter().any(|c| c.volume_mounts.iter().any(|m| m.name == v.name)),
            "{ctx}: volume {} is not mounted",
            v.name
        );
    }

    // moat: probes on the admin endpoints, ports = the config's listeners.
    let moat = pod
        .containers
        .iter()
        .find(|c| c.name == "moat")
        .unwrap_or_else(|| panic!("{ctx}: no moat container"));
    let (config_path, config_text) = moat_config(bundle, spec, moat, ctx);
    let config: Value =
        serde_saphyr::from_str(config_text).unwrap_or_else(|e| panic!("{ctx}: moat.yaml: {e}"));
    let admin_port = port_in(config.pointer("/admin/bind").and_then(Value::as_str).expect("admin.bind"));
    assert!(
        config.pointer("/admin/bind").and_then(Value::as_str).is_some_and(|b| b.starts_with("0.0.0.0:")),
        "{ctx}: admin.bind must be on the pod IP for the kubelet's probes"
    );
    for (which, probe, path) in
        [("liveness", &moat.liveness_probe, "/healthz"), ("readiness", &moat.readiness_probe, "/readyz")]
    {
        let p = probe.as_ref().unwrap_or_else(|| panic!("{ctx}: moat has no {which} probe"));
        assert_eq!(p.http_get.path, path, "{ctx}: moat {which} probe path");
        assert_eq!(
            port_of(moat, &p.http_get.port),
            Some(admin_port),
            "{ctx}: moat {which} probe is not on admin.bind"
        );
    }
    let listeners = config.get("listeners").and_then(Value::as_array).expect("listeners");
    let moat_ports: BTreeSet<u16> = moat.ports.iter().map(|p| p.container_port).collect();
    for l in listeners {
        let port = port_in(l.get("bind").and_then(Value::as_str).expect("bind"));
        assert!(moat_ports.contains(&port), "{ctx}: listener port {port} is not a container port of moat");
    }
    assert!(moat_ports.contains(&admin_port), "{ctx}: admin port {admin_port} is not a container port");
    // Every file the config references is a key of the volume mounted there.
    let config_dir = config_path.parent().unwrap().to_path_buf();
    let mut files: Vec<(String, String)> = Vec::new();
    for (i, l) in listeners.iter().enumerate() {
        for k in ["cert", "key", "client_ca"] {
            if let Some(f) = l.pointer(&format!("/tls/{k}")).and_then(Value::as_str) {
                files.push((format!("listeners[{i}].tls.{k}"), f.to_string()));
            }
        }
    }
    for (key, ptr) in [("authorization.acl", "/authorization/acl"), ("bans.file", "/bans/file")] {
        if let Some(f) = config.pointer(ptr).and_then(Value::as_str) {
            files.push((key.to_string(), f.to_string()));
        }
    }
    for a in config.get("authentication").and_then(Value::as_array).into_iter().flatten() {
        if let Some(f) = a.get("path").and_then(Value::as_str) {
            files.push(("authentication[].path".into(), f.to_string()));
        }
    }
    assert!(files.len() >= 4, "{ctx}: expected certificate and policy files in moat.yaml");
    for (key, file) in files {
        let path = normalize(&config_dir.join(&file));
        let (volume, name) = mounted(moat, &path)
            .unwrap_or_else(|| panic!("{ctx}: {key} = {file}: {} is on no mount", path.display()));
        let keys = volume_keys(bundle, spec, volume, ctx).unwrap_or_default();
        assert!(keys.contains(&name), "{ctx}: {key} = {file}: volume {volume} has no {name} (has {keys:?})");
    }

    // Mosquitto: loopback only, no pod port, and it is moat's upstream.
    let mosq = pod
        .containers
        .iter()
        .find(|c| c.name == "mosquitto")
        .unwrap_or_else(|| panic!("{ctx}: no mosquitto"));
    assert!(mosq.ports.is_empty(), "{ctx}: the broker must not be a pod port");
    let conf_path =
        mosq.command.iter().chain(&mosq.args).skip_while(|a| *a != "-c").nth(1).expect("mosquitto -c");
    let (volume, name) = mounted(mosq, Path::new(conf_path)).expect("mosquitto.conf mounted");
    let v = pod.volumes.iter().find(|v| v.name == volume).unwrap();
    let Some(Body::ConfigMap(cm)) =
        find(bundle, "ConfigMap", &v.config_map.as_ref().unwrap().name).map(|o| &o.body)
    else {
        panic!("{ctx}: mosquitto config map")
    };
    let mosquitto_conf = cm.data.get(&name).expect("mosquitto.conf key");
    let broker_listeners: Vec<&str> =
        mosquitto_conf.lines().filter(|l| l.trim_start().starts_with("listener ")).collect();
    assert!(
        !broker_listeners.is_empty(),
        "{ctx}: mosquitto.conf has no explicit listener (default binds all addresses)"
    );
    for l in &broker_listeners {
        let parts: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(
            parts.get(2).copied(),
            Some("127.0.0.1"),
            "{ctx}: mosquitto `{l}` is not bound to 127.0.0.1"
        );
    }
    let upstream = config.pointer("/upstream/address").and_then(Value::as_str).expect("upstream.address");
    let broker_port = broker_listeners[0].split_whitespace().nth(1).unwrap();
    assert_eq!(
        upstream,
        format!("127.0.0.1:{broker_port}"),
        "{ctx}: moat's upstream is not the pod's broker"
    );

    // Services select the pods and target container ports; devices get 8883 and 8084.
    let all_ports: Vec<(&Container, &k8s::ContainerPort)> =
        pod.containers.iter().flat_map(|c| c.ports.iter().map(move |p| (c, p))).collect();
    let target = |t: &IntOrString| {
        all_ports.iter().find(|(_, p)| match t {
            IntOrString::Int(n) => i64::from(p.container_port) == *n,
            IntOrString::Str(s) => &p.name == s,
        })
    };
    let mut service_ports = BTreeMap::new();
    for o in bundle {
        if let Body::Service(s) = &o.body {
            assert!(
                subset(&s.selector, template_labels),
                "{ctx}: Service {} selects no moat pod",
                o.metadata.name
            );
            for p in &s.ports {
                let (c, cp) = target(&p.target_port).unwrap_or_else(|| {
                    panic!(
                        "{ctx}: Service {} targetPort {:?} is no container port",
                        o.metadata.name, p.target_port
                    )
                });
                assert_eq!(c.name, "moat", "{ctx}: Service {} exposes container {}", o.metadata.name, c.name);
                service_ports.insert((o.metadata.name.clone(), p.port), cp.container_port);
            }
        }
    }
    assert_eq!(
        service_ports.get(&("moat".into(), 8883)),
        Some(&8883),
        "{ctx}: Service moat must expose 8883 (mqtts)"
    );
    assert_eq!(
        service_ports.get(&("moat".into(), 8084)),
        Some(&8084),
        "{ctx}: Service moat must expose 8084 (wss)"
    );
    assert!(
        !service_ports.iter().any(|((name, _), target)| name == "moat" && *target == admin_port),
        "{ctx}: the admin port must not be on the device-facing Service"
    );
    if let Some(Body::Service(s)) = find(bundle, "Service", "moat").map(|o| &o.body) {
        assert_eq!(
            s.external_traffic_policy.as_deref(),
            Some("Local"),
            "{ctx}: client addresses (IP bans) need externalTrafficPolicy Local"
        );
    }

    // NetworkPolicy, PDB: select the pods; policy ports are container ports; admin restricted.
    let np = find(bundle, "NetworkPolicy", "moat").unwrap_or_else(|| panic!("{ctx}: no NetworkPolicy"));
    let Body::NetworkPolicy(np) = &np.body else { unreachable!() };
    assert!(subset(&np.pod_selector.match_labels, template_labels), "{ctx}: NetworkPolicy selects no pod");
    assert!(
        np.policy_types.iter().any(|t| t == "Ingress") && np.policy_types.iter().any(|t| t == "Egress"),
        "{ctx}: policyTypes"
    );
    for rule in &np.ingress {
        for p in &rule.ports {
            let port = port_of(moat, &p.port)
                .unwrap_or_else(|| panic!("{ctx}: NetworkPolicy port {:?} is not a moat port", p.port));
            if port == admin_port {
                assert!(!rule.from.is_empty(), "{ctx}: the admin port is open to everyone");
            }
        }
    }
    let pdb = find(bundle, "PodDisruptionBudget", "moat")
        .unwrap_or_else(|| panic!("{ctx}: no PodDisruptionBudget"));
    let Body::PodDisruptionBudget(pdb) = &pdb.body else { unreachable!() };
    assert!(subset(&pdb.selector.match_labels, template_labels), "{ctx}: PDB selects no pod");
    assert!(
        pdb.min_available.is_some() != pdb.max_unavailable.is_some(),
        "{ctx}: PDB needs exactly one of minAvailable/maxUnavailable"
    );

    // ServiceMonitor: a Service with those labels, a port of that Service, /metrics.
    let sm = find(bundle, "ServiceMonitor", "moat").unwrap_or_else(|| panic!("{ctx}: no ServiceMonitor"));
    let Body::ServiceMonitor(sm) = &sm.body else { unreachable!() };
    let scraped: Vec<&Object> = bundle
        .iter()
        .filter(|o| o.kind == "Service" && subset(&sm.selector.match_labels, &o.metadata.labels))
        .collect();
    assert_eq!(scraped.len(), 1, "{ctx}: the ServiceMonitor must select exactly the admin Service");
    let Body::Service(svc) = &scraped[0].body else { unreachable!() };
    for e in &sm.endpoints {
        let p = svc
            .ports
            .iter()
            .find(|p| p.name == e.port)
            .unwrap_or_else(|| panic!("{ctx}: ServiceMonitor port {} not on Service", e.port));
        assert_eq!(
            target(&p.target_port).map(|(_, cp)| cp.container_port),
            Some(admin_port),
            "{ctx}: scrape is not the admin port"
        );
        assert_eq!(e.path, "/metrics");
    }

    // Alerts: well formed, over documented metrics, covering the four required conditions.
    let rules = find(bundle, "PrometheusRule", "moat").unwrap_or_else(|| panic!("{ctx}: no PrometheusRule"));
    let Body::PrometheusRule(rules) = &rules.body else { unreachable!() };
    let documented = catalogue::metrics();
    let mut used = BTreeSet::new();
    for r in rules.groups.iter().flat_map(|g| &g.rules) {
        assert!(r.labels.contains_key("severity"), "{ctx}: alert {} has no severity", r.alert);
        assert!(r.annotations.contains_key("summary"), "{ctx}: alert {} has no summary", r.alert);
        for m in catalogue::promql_metrics(&r.expr) {
            assert!(
                catalogue::documented(&documented, &m).is_some()
                    || catalogue::PENDING_METRICS.contains(&m.as_str()),
                "{ctx}: alert {} uses {m}, which is not in the README catalogue",
                r.alert
            );
            used.insert(m);
        }
    }
    for m in [
        "moat_upstream_connect_failures_total",
        "moat_tls_certificate_expiry_timestamp_seconds",
        "moat_authentications_total",
        "moat_config_reloads_total",
    ] {
        assert!(used.contains(m), "{ctx}: no alert on {m}");
    }

    // The certificate lands in the Secret the pod mounts; rendered overlays define its issuer.
    let cert =
        find(bundle, "Certificate", "moat-tls").unwrap_or_else(|| panic!("{ctx}: no Certificate moat-tls"));
    let Body::Certificate(cert) = &cert.body else { unreachable!() };
    assert!(
        pod.volumes.iter().any(|v| v.secret.as_ref().is_some_and(|s| s.secret_name == cert.secret_name)),
        "{ctx}: certificate secret not mounted"
    );
    if rendered {
        assert!(
            find(bundle, &cert.issuer_ref.kind, &cert.issuer_ref.name).is_some(),
            "{ctx}: issuer {} not defined",
            cert.issuer_ref.name
        );
        let ns: BTreeSet<_> =
            bundle.iter().filter(|o| o.kind != "Namespace").map(|o| o.metadata.namespace.clone()).collect();
        assert_eq!(ns.len(), 1, "{ctx}: objects in several namespaces: {ns:?}");
    }

    moat_check(bundle, spec, moat, ctx);
}

/// Writes every file of moat's volumes into a temp dir laid out like the pod (`config/`, `tls/`),
/// with a throwaway certificate for the Secret, and runs `moat check` on the config.
fn moat_check(bundle: &[Object], spec: &DeploymentSpec, moat: &Container, ctx: &str) {
    let root = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (config_path, _) = moat_config(bundle, spec, moat, ctx);
    for m in &moat.volume_mounts {
        let dir = root.path().join(m.mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        let v = spec.template.spec.volumes.iter().find(|v| v.name == m.name).unwrap();
        if let Some(cm) = &v.config_map {
            let Some(Body::ConfigMap(data)) = find(bundle, "ConfigMap", &cm.name).map(|o| &o.body) else {
                panic!()
            };
            for (k, text) in &data.data {
                std::fs::write(dir.join(k), text).unwrap();
            }
        }
        if v.secret.is_some() {
            for key in volume_keys(bundle, spec, &m.name, ctx).unwrap_or_default() {
                let source = match key.as_str() {
                    "tls.crt" => pki.server.cert.clone(),
                    "tls.key" => pki.server.key.clone(),
                    "ca.crt" => pki.ca_cert().to_path_buf(),
                    other => panic!("{ctx}: no throwaway content for secret key {other}"),
                };
                std::fs::copy(source, dir.join(&key)).unwrap();
            }
        }
    }
    let config = root.path().join(config_path.to_string_lossy().trim_start_matches('/'));
    let out = moat_command().arg("check").arg("-c").arg(&config).output().expect("run moat check");
    assert!(
        out.status.success(),
        "{ctx}: moat check rejects the ConfigMap's moat.yaml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn base_manifests_pass_the_schema_and_match_moat() {
    check_bundle(&base_bundle(), "base", false);
}

#[test]
fn overlays_render_and_pass_the_same_checks() {
    for overlay in ["dev", "production"] {
        if let Some(bundle) = render(overlay) {
            check_bundle(&bundle, overlay, true);
        }
    }
}

#[test]
fn every_yaml_file_under_deploy_parses_and_matches_the_schema() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&deploy_dir(), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let ctx = f.display().to_string();
        if f.file_name().is_some_and(|n| n == "kustomization.yaml") {
            kustomization(f.parent().unwrap());
        } else if f.parent().is_some_and(|d| d.ends_with("config")) {
            yaml_docs(&text, &ctx); // moat's own files: checked by `moat check` above
        } else {
            parse_all(&yaml_docs(&text, &ctx), &ctx);
        }
    }
}

#[test]
fn schema_rejects_unknown_fields_and_kinds() {
    let typo: Value = serde_saphyr::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n        - name: x\n          image: x\n          resources: {}\n          readinesProbe: {httpGet: {path: /, port: 1}}\n",
    )
    .unwrap();
    let e = k8s::parse(&typo).unwrap_err();
    assert!(e.contains("readinesProbe"), "{e}");
    let unknown: Value = serde_saphyr::from_str("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n").unwrap();
    assert!(k8s::parse(&unknown).is_err());
}

#[test]
fn dockerfile_builds_without_the_dev_broker_and_runs_as_a_numeric_non_root_user() {
    let path = deploy_dir().join("Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage build expected");
    let build = text.lines().find(|l| l.contains("cargo build")).expect("cargo build");
    for flag in ["--release", "--locked", "--no-default-features", "--features tls-psk"] {
        assert!(build.contains(flag), "cargo build lacks {flag}: {build}");
    }
    let user = text.lines().rfind(|l| l.starts_with("USER ")).expect("USER");
    let uid: u32 = user[5..].split(':').next().unwrap().trim().parse().expect("numeric USER");
    assert!(uid > 0, "USER must not be root");
    let deployment = std::fs::read_to_string(deploy_dir().join("kustomize/base/deployment.yaml")).unwrap();
    assert!(
        deployment.contains(&format!("runAsUser: {uid}")),
        "the Deployment runs moat as the image's uid {uid}"
    );
    for expose in ["8883", "8084", "9090"] {
        assert!(text.lines().any(|l| l.starts_with("EXPOSE") && l.contains(expose)), "EXPOSE {expose}");
    }
    assert!(!deploy_dir().join("Containerfile").exists(), "one container file only");
}

#[test]
fn grafana_dashboard_covers_the_catalogue() {
    let path = deploy_dir().join("grafana/moat.json");
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard is JSON");
    assert!(dash.get("title").and_then(Value::as_str).is_some(), "title");
    assert!(dash.get("uid").and_then(Value::as_str).is_some(), "uid");
    let vars: Vec<&str> = dash
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .expect("templating")
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    assert!(
        vars.contains(&"datasource"),
        "a datasource variable, so the dashboard imports anywhere: {vars:?}"
    );
    let documented = catalogue::metrics();
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let mut panels: Vec<&Value> = Vec::new();
    for p in dash.get("panels").and_then(Value::as_array).expect("panels") {
        panels.push(p);
        panels.extend(p.get("panels").and_then(Value::as_array).into_iter().flatten());
    }
    for p in panels {
        let id = p.get("id").and_then(Value::as_u64).expect("panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        if p.get("type").and_then(Value::as_str) == Some("row") {
            continue;
        }
        let title = p.get("title").and_then(Value::as_str).expect("panel title");
        assert_eq!(
            p.pointer("/datasource/uid").and_then(Value::as_str),
            Some("${datasource}"),
            "panel {title}: datasource"
        );
        let targets =
            p.get("targets").and_then(Value::as_array).unwrap_or_else(|| panic!("panel {title}: no targets"));
        assert!(!targets.is_empty(), "panel {title}: no targets");
        for t in targets {
            let expr = t
                .get("expr")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("panel {title}: target without expr"));
            let names = catalogue::promql_metrics(expr);
            assert!(!names.is_empty(), "panel {title}: no moat metric in {expr}");
            for m in names {
                let base = catalogue::documented(&documented, &m).map(|d| d.name.clone());
                assert!(
                    base.is_some() || catalogue::PENDING_METRICS.contains(&m.as_str()),
                    "panel {title}: {m} is not in the README catalogue"
                );
                used.insert(base.unwrap_or(m));
            }
        }
    }
    let missing: Vec<_> = documented.keys().filter(|m| !used.contains(*m)).collect();
    assert!(missing.is_empty(), "metrics in the catalogue without a panel: {missing:?}");
}

/// `promtool` from `$PROMTOOL` or `PATH`, if installed.
fn promtool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    found.then(|| PathBuf::from("promtool"))
}

#[test]
fn alerts_pass_promtool_check_and_unit_tests() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool not installed (set PROMTOOL=…): alert expressions checked by name only");
        return;
    };
    let path = deploy_dir().join("kustomize/base/prometheusrule.yaml");
    let doc = yaml_docs(&std::fs::read_to_string(&path).unwrap(), "prometheusrule.yaml").pop().unwrap();
    let groups = doc.pointer("/spec/groups").expect("spec.groups").clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.json"), serde_json::json!({ "groups": groups }).to_string())
        .unwrap();
    std::fs::copy(repo_root().join("tests/promtool/alerts_test.yaml"), dir.path().join("alerts_test.yaml"))
        .unwrap();
    for args in [["check", "rules", "rules.json"], ["test", "rules", "alerts_test.yaml"]] {
        let out = Command::new(&promtool).args(args).current_dir(dir.path()).output().expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
