//! The GraphiQL playground served at `GET /`, fully offline.
//!
//! `build.rs` copies the pinned GraphiQL / React / ReactDOM UMD bundles from
//! `web/node_modules` into `OUT_DIR` and sets `cfg(graphiql_bundled)`; they are
//! embedded here and served same-origin under `/graphiql/{name}` (no CDN).
//! Without them, [`page`] explains how to get them; the API works regardless.
//!
//! Headers typed into GraphiQL's header editor (e.g.
//! `{"Authorization": "Bearer <accessToken>"}`) are sent as HTTP headers on
//! queries and mutations, and — by `@graphiql/toolkit`'s `createGraphiQLFetcher`,
//! which merges them into graphql-ws `connectionParams` — as the
//! `connection_init` payload of each subscription's socket.

/// The HTML page for `GET /` (`text/html; charset=utf-8`).
pub fn page() -> &'static str {
    if cfg!(graphiql_bundled) {
        PLAYGROUND_PAGE
    } else {
        FALLBACK_PAGE
    }
}

/// An embedded asset for `GET /graphiql/{name}`: `(content type, body)`.
///
/// Names: `react.js`, `react-dom.js`, `graphiql.js`, `graphiql.css`. `None` for
/// any other name, and for every name when the assets were not bundled.
#[cfg(graphiql_bundled)]
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    match name {
        "react.js" => Some((JS, include_bytes!(concat!(env!("OUT_DIR"), "/react.js")))),
        "react-dom.js" => Some((
            JS,
            include_bytes!(concat!(env!("OUT_DIR"), "/react-dom.js")),
        )),
        "graphiql.js" => Some((JS, include_bytes!(concat!(env!("OUT_DIR"), "/graphiql.js")))),
        "graphiql.css" => Some((
            CSS,
            include_bytes!(concat!(env!("OUT_DIR"), "/graphiql.css")),
        )),
        _ => None,
    }
}

/// An embedded asset for `GET /graphiql/{name}`: `(content type, body)`.
///
/// This build has no GraphiQL assets (see `build.rs`), so always `None`.
#[cfg(not(graphiql_bundled))]
pub fn asset(_name: &str) -> Option<(&'static str, &'static [u8])> {
    None
}

const PLAYGROUND_PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Confab · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/graphiql/graphiql.css">
<style>
  html, body { height: 100%; margin: 0; }
  #graphiql { height: 100vh; }
  #graphiql > p { font: 16px/1.5 system-ui, sans-serif; margin: 2rem; }
</style>
</head>
<body>
<div id="graphiql"><p>Loading GraphiQL…</p></div>
<noscript><p>GraphiQL needs JavaScript. The API itself is at POST /graphql.</p></noscript>
<script src="/graphiql/react.js"></script>
<script src="/graphiql/react-dom.js"></script>
<script src="/graphiql/graphiql.js"></script>
<script>
(function () {
  var container = document.getElementById('graphiql');
  try {
    // createFetcher sends the header editor's headers as HTTP headers on
    // queries and mutations, and as graphql-ws connectionParams (the
    // connection_init payload) on a fresh socket for each subscription.
    var fetcher = GraphiQL.createFetcher({
      url: location.origin + '/graphql',
      subscriptionUrl:
        (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws',
      enableIncrementalDelivery: false
    });
    var defaultQuery = [
      '# Welcome to Confab.',
      '#',
      '# Sign in with the register or login mutation, then put the accessToken in',
      '# the Headers tab below:  {"Authorization": "Bearer <accessToken>"}',
      '# It is sent as an HTTP header on queries and mutations, and in the',
      '# connection_init payload of subscriptions (WebSocket at /graphql/ws).',
      '',
      'query Me {',
      '  me {',
      '    id',
      '    username',
      '  }',
      '}',
      ''
    ].join('\n');
    ReactDOM.createRoot(container).render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultQuery: defaultQuery,
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: true
      })
    );
  } catch (err) {
    container.textContent = '';
    var p = document.createElement('p');
    p.textContent = 'GraphiQL failed to start: ' + err +
      '. The API itself is at POST /graphql.';
    container.appendChild(p);
  }
})();
</script>
</body>
</html>
"##;

const FALLBACK_PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Confab · GraphiQL not embedded</title>
<link rel="icon" href="data:,">
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
  code, pre { font-family: ui-monospace, monospace; background: #f3f3f3; border-radius: 4px; }
  code { padding: 0 .25em; }
  pre { padding: .75em 1em; overflow-x: auto; }
</style>
</head>
<body>
<h1>GraphiQL is not available in this build</h1>
<p>The GraphiQL assets were not embedded in this build of Confab: when it was
compiled, <code>web/node_modules</code> did not hold the pinned GraphiQL, React
and ReactDOM bundles, and they could not be fetched.</p>
<p>To fix it, install them from the committed lock file, then rebuild:</p>
<pre>npm ci --prefix web
cargo build --release</pre>
<p>The API itself works regardless: send GraphQL to <code>POST /graphql</code>
(JSON body, <code>Authorization: Bearer &lt;accessToken&gt;</code> when signed in),
and subscribe over WebSocket at <code>/graphql/ws</code>
(<code>graphql-transport-ws</code> or the legacy <code>graphql-ws</code> subprotocol).</p>
</body>
</html>
"##;
