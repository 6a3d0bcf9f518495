"""An editor for tests and benchmarks: `cnnspec lsp` started as a process and driven over
stdio by pygls' own client, one request at a time, from synchronous code."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

ROOT = Path(__file__).resolve().parent.parent


def uri_of(path: Path | str) -> str:
    return from_fs_path(str(Path(path).resolve()))


class Editor:
    """A client that opens, edits and asks about documents, waiting for each answer."""

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.client = LanguageClient("cnnspec-tests", "1")
        self.diagnostics: dict[str, types.PublishDiagnosticsParams] = {}
        self.arrived: dict[str, float] = {}  # when each URI's latest diagnostics came
        self.versions: dict[str, int] = {}
        self._waiting: asyncio.Event | None = None

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = params
            self.arrived[params.uri] = time.perf_counter()
            if self._waiting is not None:
                self._waiting.set()

        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.run(self.client.start_io(sys.executable, "-m", "cnnspec", "lsp", env=env))
        self.run(
            self.client.initialize_async(
                types.InitializeParams(
                    process_id=os.getpid(),
                    root_uri=uri_of(ROOT),
                    capabilities=types.ClientCapabilities(),
                )
            )
        )
        self.client.initialized(types.InitializedParams())

    def run(self, coroutine):
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout))

    def close(self) -> None:
        try:
            self.run(self.client.shutdown_async(None))
            self.client.exit(None)
            self.run(self.client.stop())
        finally:
            self.loop.close()

    # --- documents ----------------------------------------------------------------------
    def open(self, path: Path | str, text: str | None = None) -> types.PublishDiagnosticsParams:
        path = Path(path)
        text = path.read_text() if text is None else text
        uri = uri_of(path)
        self.versions[uri] = 1
        language = "yaml" if path.suffix in (".yaml", ".yml") else "cnnspec"
        item = types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        return self._then_diagnostics(
            uri, lambda: self.client.text_document_did_open(types.DidOpenTextDocumentParams(item))
        )

    def change(self, path: Path | str, text: str) -> types.PublishDiagnosticsParams:
        """Replace the whole text (as an editor may send each keystroke)."""
        uri = uri_of(path)
        self.versions[uri] += 1
        params = types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=self.versions[uri]
            ),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
        return self._then_diagnostics(uri, lambda: self.client.text_document_did_change(params))

    def edit(
        self, path: Path | str, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> types.PublishDiagnosticsParams:
        """Replace the text between two (line, character) places, as editors send a
        keystroke."""
        uri = uri_of(path)
        self.versions[uri] += 1
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(*start), types.Position(*end)), text=text
        )
        params = types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=self.versions[uri]
            ),
            content_changes=[change],
        )
        return self._then_diagnostics(uri, lambda: self.client.text_document_did_change(params))

    def _then_diagnostics(self, uri: str, send) -> types.PublishDiagnosticsParams:
        version = self.versions[uri]

        async def wait():
            while True:
                got = self.diagnostics.get(uri)
                if got is not None and got.version == version:
                    return got
                self._waiting = asyncio.Event()
                await self._waiting.wait()

        self.diagnostics.pop(uri, None)
        send()
        return self.run(wait())

    def close_document(self, path: Path | str) -> None:
        ident = types.TextDocumentIdentifier(uri=uri_of(path))
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(ident))

    # --- requests -------------------------------------------------------------------------
    def hover(self, path, line: int, character: int) -> types.Hover | None:
        return self.run(
            self.client.text_document_hover_async(
                types.HoverParams(
                    types.TextDocumentIdentifier(uri_of(path)), types.Position(line, character)
                )
            )
        )

    def complete(self, path, line: int, character: int) -> list[types.CompletionItem]:
        found = self.run(
            self.client.text_document_completion_async(
                types.CompletionParams(
                    types.TextDocumentIdentifier(uri_of(path)), types.Position(line, character)
                )
            )
        )
        return found.items if isinstance(found, types.CompletionList) else list(found or [])

    def definition(self, path, line: int, character: int):
        return self.run(
            self.client.text_document_definition_async(
                types.DefinitionParams(
                    types.TextDocumentIdentifier(uri_of(path)), types.Position(line, character)
                )
            )
        )

    def symbols(self, path) -> list[types.DocumentSymbol]:
        return self.run(
            self.client.text_document_document_symbol_async(
                types.DocumentSymbolParams(types.TextDocumentIdentifier(uri_of(path)))
            )
        )

    def wait_for(self, uri: str, timeout: float = 5.0) -> types.PublishDiagnosticsParams:
        """Diagnostics for a file no one opened (a used file), once they come."""

        async def wait():
            while uri not in self.diagnostics:
                self._waiting = asyncio.Event()
                await self._waiting.wait()
            return self.diagnostics[uri]

        return self.loop.run_until_complete(asyncio.wait_for(wait(), timeout))
