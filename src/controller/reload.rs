//! The parts of a reload only a restart can apply.
use crate::config::Config;

/// One message per key that changed but needs a restart (listeners, workers).
pub fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let mut errs = Vec::new();
    if new.listen != old.listen {
        errs.push("listen: changing a listener needs a restart".to_string());
    }
    if new.tls.as_ref().map(|t| &t.listen) != old.tls.as_ref().map(|t| &t.listen) {
        errs.push("tls.listen: changing a listener needs a restart".into());
    }
    if new.admin.listen != old.admin.listen {
        errs.push("admin.listen: changing a listener needs a restart".into());
    }
    if new.workers != old.workers {
        errs.push("workers: changing the worker count needs a restart".into());
    }
    errs
}
