//! SIP user agent: sans-IO transactions, dialogs, registration and digest auth on rsip types,
//! with a thin tokio driver at the edge.
