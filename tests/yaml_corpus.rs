//! Every document of the chart corpus (`../shared/charts/rendered/`, or `$POD_HARDENER_CHARTS`),
//! written by pod-hardener's YAML writer, reads back as the same object: through pod-hardener's
//! reader (go-yaml v2's rules, as kubectl) and through a YAML 1.2 reader (libyaml, through
//! serde_yaml_ng). And `harden` writes each rendering's unchanged documents back byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use pod_hardener::manifest::read_source_documents;
use pod_hardener::yaml::{parse_stream, write_document};

fn corpus() -> Vec<(String, String)> {
    let dir = std::env::var_os("POD_HARDENER_CHARTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/charts/rendered"));
    let mut out: Vec<(String, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the chart corpus is not at {} ({e}): set POD_HARDENER_CHARTS",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.display().to_string(), fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no renderings in {}", dir.display());
    out
}

#[test]
fn every_corpus_document_written_reads_back_the_same_in_yaml_1_1_and_1_2() {
    let mut documents = 0;
    for (path, text) in corpus() {
        for doc in read_source_documents(&text).unwrap() {
            let written = write_document(&doc.object, Some(&doc.tree));
            let again = parse_stream(&written).unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(
                again[0].tree.to_json().unwrap(),
                doc.object,
                "{path} document {}:\n{written}",
                doc.index
            );
            assert_eq!(
                again[0].tree, doc.tree,
                "{path} document {}: key order",
                doc.index
            );
            let yaml12: serde_json::Value = serde_yaml_ng::from_str(&written).unwrap();
            assert_eq!(
                yaml12, doc.object,
                "{path} document {}:\n{written}",
                doc.index
            );
            documents += 1;
        }
    }
    println!("{documents} documents written and read back alike");
    assert!(documents > 100);
}

#[test]
fn harden_keeps_every_unchanged_corpus_document_to_the_byte() {
    let options = pod_hardener::cli::HardenArgs {
        input: pod_hardener::cli::InputArgs { file: None },
        level: pod_hardener::pss::Level::Restricted,
        mode: pod_hardener::harden::Mode::Fill,
        skip: Vec::new(),
        explain: false,
        images: Default::default(),
    }
    .options()
    .unwrap();
    for (path, text) in corpus() {
        let out = pod_hardener::cli::harden::run(text.as_bytes(), &options)
            .unwrap()
            .stdout;
        let before = read_source_documents(&text).unwrap();
        let after = read_source_documents(&out).unwrap();
        assert_eq!(before.len(), after.len(), "{path}");
        for (b, a) in before.iter().zip(&after) {
            if a.object == b.object {
                assert_eq!(
                    &out[a.content.clone()],
                    &text[b.content.clone()],
                    "{path} document {}",
                    b.index
                );
            }
        }
        // Hardening its own output changes nothing, to the byte.
        let again = pod_hardener::cli::harden::run(out.as_bytes(), &options)
            .unwrap()
            .stdout;
        assert_eq!(again, out, "{path}");
    }
}
