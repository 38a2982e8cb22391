package provider

// ChangeOHTTPKeys tells a running server that the gateway keys were rotated.
const ChangeOHTTPKeys = "ohttp_keys"
