//! The server's side of SNS delivery: `lambda` subscriptions invoke functions through the
//! engine's durable asynchronous queue, and `http` deliveries reach only the networks the
//! operator allowed (`--sns-allow-network`).

use std::net::SocketAddr;
use std::sync::Arc;

use warden_sns::deliver::{InvokeError, InvokeFuture, LambdaInvocation};

/// Invokes a subscribed function asynchronously, as SNS invokes Lambda: the event is
/// queued durably (the queue retries failed invocations as Lambda does); SNS retries only
/// when it could not be queued (the function is gone, the queue is full).
pub struct EngineTarget(pub warden_engine::Engine, pub Arc<warden_api::ApiState>);

impl warden_sns::LambdaTarget for EngineTarget {
    fn invoke(&self, invocation: LambdaInvocation) -> InvokeFuture {
        let engine = self.0.clone();
        let state = Arc::clone(&self.1);
        Box::pin(async move {
            let function = state
                .function_ref(&invocation.function_arn)
                .map_err(|e| InvokeError(e.message))?;
            engine
                .enqueue(&function, bytes::Bytes::from(invocation.event))
                .await
                .map(|_| ())
                .map_err(|e| InvokeError(e.to_string()))
        })
    }
}

/// The networks `http` deliveries may connect to.
pub struct AllowedNetworks(pub Vec<ipnet::IpNet>);

impl warden_sns::EndpointGuard for AllowedNetworks {
    fn allow(&self, addr: &SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sns::EndpointGuard;

    #[test]
    fn only_the_allowed_networks_are_reached() {
        let guard = AllowedNetworks(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(guard.allow(&"127.0.0.1:80".parse().unwrap()));
        assert!(guard.allow(&"[::1]:80".parse().unwrap()));
        assert!(guard.allow(&"[::ffff:127.0.0.1]:80".parse().unwrap()));
        for refused in [
            "169.254.169.254:80",
            "10.0.0.1:80",
            "[fe80::1]:80",
            "8.8.8.8:53",
        ] {
            assert!(!guard.allow(&refused.parse().unwrap()), "{refused}");
        }
    }
}
