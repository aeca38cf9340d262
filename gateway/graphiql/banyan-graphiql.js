// Starts GraphiQL on Banyan's page. Served as a file (not inline) so the page's
// Content-Security-Policy allows scripts from the gateway itself only; its settings come from the
// page's <script id="banyan-graphiql-config" type="application/json">, which is data, not code.
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('banyan-graphiql-config').textContent);
  function url(path, websocket) {
    var resolved = new URL(path, window.location.href);
    if (websocket) resolved.protocol = resolved.protocol === 'https:' ? 'wss:' : 'ws:';
    return resolved.toString();
  }
  var fetcher = GraphiQL.createFetcher({
    url: url(config.endpoint, false),
    subscriptionUrl: url(config.endpoint, true),
    headers: config.headers,
    wsConnectionParams: config.headers,
    fetch: function (input, init) {
      return window.fetch(input, Object.assign({}, init, { credentials: 'same-origin' }));
    },
  });
  var props = {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    defaultHeaders: Object.keys(config.headers).length ? JSON.stringify(config.headers, null, 2) : undefined,
  };
  if (config.tabs.length) props.defaultTabs = config.tabs;
  ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, props));
})();
