//! How many access events per second the per-client detectors judge on
//! one core: a mix of ordinary visitors (pages and static files from
//! 20,000 addresses), scanners walking random paths and known-bad ones,
//! and password sprays. `bench/watch.sh` runs it and prints the figure.
//!
//! Usage: throughput [EVENTS]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rampart_watch::{Detector, DetectorConfig, Request};

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000_000);
    let paths: Vec<String> = (0..500).map(|i| format!("/products/{i}")).collect();
    let assets: Vec<String> = (0..50).map(|i| format!("/static/app.{i}.js")).collect();
    let probes: Vec<String> = (0..5_000).map(|i| format!("/backup-{i}.zip")).collect();
    let mut detector = Detector::new(DetectorConfig::default());
    let start = Instant::now();
    let t0 = Instant::now();
    let mut decisions = 0u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..events {
        // xorshift: cheap, and the same mix on every run.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let kind = x % 100;
        let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (x >> 40) as u32 % 20_000));
        let (method, path, status) = match kind {
            0..=59 => ("GET", paths[(x >> 8) as usize % paths.len()].as_str(), 200),
            60..=89 => (
                "GET",
                assets[(x >> 8) as usize % assets.len()].as_str(),
                200,
            ),
            90..=97 => (
                "GET",
                probes[(x >> 8) as usize % probes.len()].as_str(),
                404,
            ),
            98 => ("POST", "/admin/login/", 200),
            _ => ("GET", "/.env", 404),
        };
        let request = Request {
            client,
            host: "shop.example.com",
            method,
            path,
            status,
        };
        let now = t0 + Duration::from_micros(n * 20);
        if black_box(detector.observe(&request, now)).is_some() {
            decisions += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.0} events/s on one core ({events} events in {secs:.2} s, {decisions} bans, {} clients tracked)",
        events as f64 / secs,
        detector.tracked()
    );
}
