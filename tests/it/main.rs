//! The integration tests: one binary (the support code compiles once), a
//! module per area. Each test starts real upstreams on 127.0.0.1:0 and sends
//! real HTTP through a real proxy.
mod support;

mod admin;
mod attacks;
mod cli;
mod config;
mod controller;
mod demo;
mod layers;
mod pool;
mod proxy;
mod reliability;
mod restart;
mod simulate;
mod telemetry;
