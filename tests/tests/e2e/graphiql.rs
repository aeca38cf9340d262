//! GraphiQL with no internet: the page names no origin but the gateway's, its policy allows no
//! other, and every asset it loads is served by the gateway, under a name that carries its
//! content's hash (so it may be cached for a year), gzipped when the browser accepts it.
//! (`scripts/graphiql-browser-check` runs the page in Chromium with the network blocked.)

use banyan_devstack::DevStackConfig;
use banyan_tests::TestStack;
use sha2::{Digest, Sha256};

/// Every `src="…"` and `href="…"` value of `html`.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                urls.push(rest[..end].to_owned());
            }
        }
    }
    urls
}

#[tokio::test]
async fn the_page_and_its_assets_come_from_the_gateway_alone() {
    let stack =
        TestStack::start_with(DevStackConfig::default(), |config| config.server.graphiql = true).await;
    let page =
        stack.http().get(stack.graphql_url()).header("accept", "text/html").send().await.expect("answers");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().expect("ASCII").to_owned();
    let html = page.text().await.expect("a page");
    assert!(!html.contains("://"), "the page names no other origin:\n{html}");
    assert!(policy.starts_with("default-src 'none'") && policy.contains("script-src 'self';"), "{policy}");
    assert!(!policy.contains("://") && !policy.contains("unsafe-inline"), "{policy}");

    let urls = asset_urls(&html);
    assert_eq!(urls.len(), 6, "two stylesheets and four scripts: {urls:?}");
    for url in &urls {
        let name = url.strip_prefix("/graphql/assets/").unwrap_or_else(|| panic!("{url} is not an asset"));
        let response = stack
            .http()
            .get(format!("http://{}{url}", stack.gateway.addr()))
            .header("accept-encoding", "identity")
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200, "{url}");
        let headers = response.headers().clone();
        assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable", "{url}");
        let kind = headers["content-type"].to_str().expect("ASCII").to_owned();
        assert!(
            (name.ends_with(".js") && kind.starts_with("text/javascript"))
                || (name.ends_with(".css") && kind.starts_with("text/css")),
            "{url}: {kind}"
        );
        assert!(headers.get("content-encoding").is_none(), "{url}: not gzipped when not accepted");
        let body = response.bytes().await.expect("a body");
        // The name's hash is the content's: a new version is a new name.
        let hash = name.split('.').rev().nth(1).expect("a hash before the extension");
        assert_eq!(hash, &hex::encode(Sha256::digest(&body))[..12], "{url}");
        assert!(body.len() > 100, "{url} is a real file");

        let gzipped = stack
            .http()
            .get(format!("http://{}{url}", stack.gateway.addr()))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("answers");
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{url}");
        assert!(gzipped.bytes().await.expect("a body").len() < body.len(), "{url}: compressed");
    }
    // GraphiQL's own bundle is among them, not a stand-in.
    assert!(urls.iter().any(|url| url.contains("/graphiql.min.") && url.ends_with(".js")), "{urls:?}");

    let missing = stack
        .http()
        .get(format!("http://{}/graphql/assets/graphiql.min.000000000000.js", stack.gateway.addr()))
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), 404);
    stack.stop().await;

    // With GraphiQL off (`banyan serve`'s default), its assets are not served either.
    let off = TestStack::start().await;
    let response =
        off.http().get(format!("http://{}{}", off.gateway.addr(), urls[0])).send().await.expect("answers");
    assert_eq!(response.status(), 404);
    off.stop().await;
}

#[tokio::test]
async fn a_configured_cdn_is_the_one_other_origin_the_policy_allows() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.server.graphiql = true;
        config.server.graphiql_cdn = "https://npm.internal.example/mirror/".to_owned();
    })
    .await;
    let page =
        stack.http().get(stack.graphql_url()).header("accept", "text/html").send().await.expect("answers");
    let policy = page.headers()["content-security-policy"].to_str().expect("ASCII").to_owned();
    let html = page.text().await.expect("a page");
    assert!(
        html.contains("https://npm.internal.example/mirror/react@18.3.1/umd/react.production.min.js"),
        "{html}"
    );
    assert!(policy.contains("script-src 'self' https://npm.internal.example;"), "{policy}");
    // Banyan's own starter script still comes from the gateway.
    assert!(
        asset_urls(&html).iter().any(|url| url.starts_with("/graphql/assets/banyan-graphiql.")),
        "{html}"
    );
    stack.stop().await;
}
