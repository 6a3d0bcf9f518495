// Starts `cnnspec lsp` for .cnn files and YAML (the server leaves YAML that is not a spec alone).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("cnnspec")
    .get("server.command", ["cnnspec", "lsp"]);
  client = new LanguageClient(
    "cnnspec",
    "cnnspec",
    { command, args },
    {
      documentSelector: [
        { scheme: "file", language: "cnnspec" },
        { scheme: "file", language: "yaml" },
        { scheme: "untitled", language: "cnnspec" },
      ],
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
