//! Webhooks: one POST per configured hook whose `events` include the kind,
//! each in its own task (a slow hook never delays an abort), bounded by the
//! hook's timeout and retried with backoff.
use crate::config::Webhook;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Tries per delivery (the first plus two retries).
const TRIES: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub(crate) struct Notifier {
    client: Option<HttpsClient>,
    hooks: Arc<Vec<Webhook>>,
}

impl Notifier {
    pub(crate) fn new(hooks: &[Webhook]) -> Self {
        let mut n = Notifier {
            client: None,
            hooks: Arc::new(Vec::new()),
        };
        n.set_hooks(hooks);
        n
    }

    /// Reload: later deliveries go to the new list.
    pub(crate) fn set_hooks(&mut self, hooks: &[Webhook]) {
        self.hooks = Arc::new(hooks.to_vec());
        if self.client.is_none() && !hooks.is_empty() {
            self.client = build_client();
        }
    }

    /// Fire-and-forget: spawns one delivery task per matching hook.
    pub(crate) fn send(&self, kind: &str, payload: &serde_json::Value) {
        let Some(client) = &self.client else { return };
        let body = Bytes::from(payload.to_string());
        for hook in self.hooks.iter() {
            if !hook.events.is_empty() && !hook.events.iter().any(|e| e == kind) {
                continue;
            }
            let (client, hook, body) = (client.clone(), hook.clone(), body.clone());
            tokio::spawn(async move { deliver(&client, &hook, body).await });
        }
    }
}

fn build_client() -> Option<HttpsClient> {
    // An explicit provider: never depends on a process-wide default being installed.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider());
    match https {
        Ok(b) => {
            let connector = b.https_or_http().enable_http1().build();
            Some(Client::builder(TokioExecutor::new()).build(connector))
        }
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: cannot build the TLS client");
            None
        }
    }
}

async fn deliver(client: &HttpsClient, hook: &Webhook, body: Bytes) {
    let mut last_err = String::new();
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
        }
        let req = match http::Request::post(&hook.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "canary-proxy")
            .body(Full::new(body.clone()))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(url = %hook.url, error = %e, "webhook: invalid request");
                return;
            }
        };
        match tokio::time::timeout(hook.timeout.get(), client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => return,
            Ok(Ok(resp)) => last_err = format!("status {}", resp.status()),
            Ok(Err(e)) => last_err = e.to_string(),
            Err(_) => last_err = format!("timed out after {}", hook.timeout),
        }
    }
    tracing::warn!(url = %hook.url, error = %last_err, tries = TRIES, "webhook delivery failed");
}
