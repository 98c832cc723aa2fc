//! What Warden nodes tell each other over NATS JetStream.
