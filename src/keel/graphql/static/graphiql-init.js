// Starts GraphiQL against this server's /graphql (no inline script: the page's CSP is 'self').
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolbarOpen: true }));
})();
