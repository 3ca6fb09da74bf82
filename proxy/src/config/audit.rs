//! `audit: {output: stdout | file, path: …}`: where the security decisions (`moat::audit`) go.

use std::path::Path;

use super::error::Issues;
use super::model::AuditOutput;
use super::raw::RawAudit;

pub(crate) fn compile(raw: RawAudit, base: &Path, issues: &mut Issues) -> Option<AuditOutput> {
    let line = raw.output.referenced.line();
    match (raw.output.value.as_str(), raw.path) {
        ("stdout", None) => Some(AuditOutput::Stdout),
        ("stdout", Some(p)) => {
            issues.push(p.referenced.line(), "audit.path", "only used with `output: file`");
            None
        }
        ("file", None) => {
            issues.push(line, "audit.path", "`output: file` needs a `path`");
            None
        }
        ("file", Some(p)) => {
            let path = base.join(&p.value);
            // The file itself is created at start; its directory must exist now, so that
            // `moat check` catches a wrong path instead of `moat run` failing later.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if p.value.is_empty() || p.value.ends_with('/') {
                issues.push(p.referenced.line(), "audit.path", "must name a file");
                None
            } else if !dir.is_dir() {
                issues.push(
                    p.referenced.line(),
                    "audit.path",
                    format!("directory {} does not exist", dir.display()),
                );
                None
            } else if path.is_dir() {
                issues.push(p.referenced.line(), "audit.path", format!("{} is a directory", path.display()));
                None
            } else {
                Some(AuditOutput::File(path))
            }
        }
        (other, _) => {
            issues.push(line, "audit.output", format!("`{other}` is not stdout or file"));
            None
        }
    }
}
