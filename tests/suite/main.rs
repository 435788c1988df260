//! The integration tests, one binary of modules (most of them were binaries of their own,
//! tests/*.rs). One binary links the harness (`common`) and the library once, not once per
//! file; the tests that count heap allocations with a `#[global_allocator]`
//! (tests/alloc.rs, tests/render_alloc.rs) stay binaries of their own, so their allocator
//! counts only them.
//!
//! The tests of all modules share one process: none may change process-wide state (the
//! environment, the current directory, signal dispositions), and a test that needs a port
//! nobody listens on holds it (`common::ClosedPort`) rather than counting on it to stay
//! free while receivers of other tests come and go.
//!
//! `cargo test --test suite MODULE::` runs one module, e.g. `cargo test --test suite faults::
//! -- --nocapture` prints the fault table.

mod common;

mod agent;
mod alertmanager;
mod alertmanager_harness;
mod backlog;
mod bad_configs;
mod boot;
mod control_socket;
mod escaping;
mod faults;
mod fifo_sources;
mod include;
mod layers;
mod log_level;
mod log_lines;
mod mute;
mod mute_am;
mod probe_hang;
mod proxy;
mod receivers;
mod reliability;
mod render_formats;
mod restart;
mod router_agent;
mod router_sources;
mod sampler;
mod security;
mod skipping;
mod state_dir;
mod upgrade;
mod webhooks;
mod windows;
