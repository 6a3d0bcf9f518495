"""`cnnspec lsp`: the language server, over stdio. This module is where the editor's
protocol (pygls, lsprotocol) meets the features, which know nothing of it: it keeps each
open document's analysis, turns positions into the editor's units and back, and publishes
diagnostics whenever a document opens, changes or is saved."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path
from pygls.workspace import TextDocument

from ..errors import Pos
from ..version import __version__
from .completion import Item, complete
from .definition import definition
from .diagnostics import Problem, problems
from .documents import Analysis, analyse, file_path, is_spec
from .hover import hover
from .index import Index
from .symbols import Symbol, symbols
from .text import Text

log = logging.getLogger(__name__)

_COMPLETION_KINDS = {
    "layer": types.CompletionItemKind.Function,
    "block": types.CompletionItemKind.Class,
    "combinator": types.CompletionItemKind.Keyword,
    "keyword": types.CompletionItemKind.Keyword,
    "argument": types.CompletionItemKind.Property,
    "parameter": types.CompletionItemKind.Variable,
    "name": types.CompletionItemKind.Constant,
    "function": types.CompletionItemKind.Function,
    "word": types.CompletionItemKind.EnumMember,
    "tensor": types.CompletionItemKind.Variable,
}
_SYMBOL_KINDS = {
    "network": types.SymbolKind.Class,
    "stage": types.SymbolKind.Field,
    "block": types.SymbolKind.Function,
    "line": types.SymbolKind.Variable,
    "use": types.SymbolKind.File,
    "train": types.SymbolKind.Object,
}


class CnnspecServer(LanguageServer):
    def __init__(self):
        super().__init__("cnnspec", __version__)
        self.analyses: dict[str, Analysis] = {}  # the latest, by document URI
        self.parsed: dict[str, Analysis] = {}  # the latest that parsed: blocks, names
        self.valid: dict[str, tuple[Analysis, Index | None]] = {}  # the latest with shapes
        self.elsewhere: dict[str, set[str]] = {}  # other files' URIs shown problems
        self.used_indexes: dict[str, tuple[Analysis, Index]] = {}  # by used file

    # --- analysis and diagnostics -----------------------------------------------------
    def check(self, uri: str) -> None:
        document = self.workspace.get_text_document(uri)
        path = document.path or uri
        if not is_spec(document.source, path):
            if uri in self.analyses:  # it was a spec a moment ago
                self.forget(uri)
                self.send(uri, [], document.version)
            return
        try:
            found = analyse(document.source, path)
        except Exception:  # a fault of cnnspec's own: say so once, keep serving
            log.exception("analysing %s failed", uri)
            return
        self.analyses[uri] = found
        if found.doc is not None:
            self.parsed[uri] = found
        if found.spec is not None:
            self.valid[uri] = (found, None)
        self.publish(uri, document, found)

    def publish(self, uri: str, document: TextDocument, found: Analysis) -> None:
        by_file = problems(found)
        here = by_file.pop(found.path, [])
        self.send(uri, [self.diagnostic(p, document) for p in here], document.version)
        shown = set()
        for name, found_there in by_file.items():
            other = from_fs_path(str(file_path(name))) or name
            if other in self.workspace.text_documents:
                continue  # open: its own analysis shows it
            self.send(other, [self.diagnostic(p, None) for p in found_there], None)
            shown.add(other)
        for gone in self.elsewhere.get(uri, set()) - shown:
            self.send(gone, [], None)
        self.elsewhere[uri] = shown

    def send(self, uri: str, diagnostics: list[types.Diagnostic], version) -> None:
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )

    def diagnostic(self, problem: Problem, document: TextDocument | None) -> types.Diagnostic:
        related = [
            types.DiagnosticRelatedInformation(
                location=types.Location(
                    uri=from_fs_path(str(file_path(r.file))) or r.file,
                    range=to_range(r.start, r.end, None),
                ),
                message=r.message,
            )
            for r in problem.related
        ]
        return types.Diagnostic(
            range=to_range(problem.start, problem.end, document),
            message=problem.message,
            severity=types.DiagnosticSeverity.Error,
            source="cnnspec",
            code=problem.kind,
            related_information=related or None,
        )

    def forget(self, uri: str) -> None:
        for table in (self.analyses, self.parsed, self.valid):
            table.pop(uri, None)
        for gone in self.elsewhere.pop(uri, set()):
            self.send(gone, [], None)

    # --- what the features read ----------------------------------------------------------
    def index_for(self, uri: str, document: TextDocument, pos: Pos) -> tuple[Analysis, Index]:
        """The latest analysis with shapes, and its index: the current one, or an earlier
        one where the line at `pos` has not changed since."""
        now = self.analyses.get(uri)
        if now is not None and now.library:
            return now, self.used_index(now)
        entry = self.valid.get(uri)
        if entry is None:
            return now, None
        found, index = entry
        if found is not now:
            current = Text(document.source)
            if found.lines.line(pos[0]) != current.line(pos[0]):
                return now, None
        if index is None:
            index = Index(found.spec.graph)
            self.valid[uri] = (found, index)
        return found, index

    def used_index(self, library: Analysis) -> Index | None:
        """The nodes a file of blocks makes in an open spec that uses it (as saved)."""
        name = str(Path(library.path).resolve())
        for found, _ in self.valid.values():
            for source, _ in found.doc.origins.values():
                if str(Path(source.name).resolve()) != name or source.text != library.text:
                    continue
                cached = self.used_indexes.get(name)
                if cached is None or cached[0] is not found:
                    within = f"{found.spec.name} ({Path(found.path).name})"
                    cached = (found, Index(found.spec.graph, source.name, within))
                    self.used_indexes[name] = cached
                return cached[1]
        return None


def to_range(start: Pos, end: Pos, document: TextDocument | None) -> types.Range:
    """cnnspec's 1-based character positions as the editor's range (UTF-16 by default)."""
    found = types.Range(
        start=types.Position(line=max(start[0] - 1, 0), character=max(start[1] - 1, 0)),
        end=types.Position(line=max(end[0] - 1, 0), character=max(end[1] - 1, 0)),
    )
    if document is None:
        return found
    return document.position_codec.range_to_client_units(document.lines, found)


def from_position(position: types.Position, document: TextDocument) -> Pos:
    here = document.position_codec.position_from_client_units(document.lines, position)
    return (here.line + 1, here.character + 1)


def make_server() -> CnnspecServer:
    server = CnnspecServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        server.check(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        server.check(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        # Other specs may use the file just saved: they read it from disk.
        for uri in list(server.analyses):
            server.check(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        server.forget(uri)
        server.send(uri, [], None)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        document = server.workspace.get_text_document(uri)
        pos = from_position(params.position, document)
        found, index = server.index_for(uri, document, pos)
        found = found if found is not None and found.doc is not None else server.parsed.get(uri)
        if found is None:
            return None
        shown = hover(found, index, pos)
        if shown is None:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=shown.markdown),
            range=to_range(shown.start, shown.end, document),
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=["(", ",", "=", " "]),
    )
    def on_completion(params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        document = server.workspace.get_text_document(uri)
        found = server.parsed.get(uri) or server.analyses.get(uri)
        if found is None:
            return types.CompletionList(is_incomplete=False, items=[])
        now = Text(document.source, found.fmt)
        items = complete(found, now, from_position(params.position, document))
        return types.CompletionList(is_incomplete=False, items=[completion(i) for i in items])

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: types.DefinitionParams) -> types.Location | None:
        uri = params.text_document.uri
        document = server.workspace.get_text_document(uri)
        found = server.analyses.get(uri)
        if found is None or found.doc is None:
            found = server.parsed.get(uri)
        if found is None:
            return None
        place = definition(found, from_position(params.position, document))
        if place is None:
            return None
        target = from_fs_path(str(place.file)) or str(place.file)
        opened = server.workspace.text_documents.get(target)
        return types.Location(uri=target, range=to_range(place.start, place.end, opened))

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        uri = params.text_document.uri
        document = server.workspace.get_text_document(uri)
        found = server.analyses.get(uri)
        if found is None or found.doc is None:
            return []  # positions of an earlier version would point at the wrong lines
        return [document_symbol(s, document) for s in symbols(found)]

    return server


def completion(item: Item) -> types.CompletionItem:
    return types.CompletionItem(
        label=item.label,
        kind=_COMPLETION_KINDS.get(item.kind),
        detail=item.detail or None,
        documentation=(
            types.MarkupContent(kind=types.MarkupKind.Markdown, value=item.documentation)
            if item.documentation
            else None
        ),
        insert_text=item.insert,
    )


def document_symbol(symbol: Symbol, document: TextDocument) -> types.DocumentSymbol:
    return types.DocumentSymbol(
        name=symbol.name,
        kind=_SYMBOL_KINDS[symbol.kind],
        detail=symbol.detail or None,
        range=to_range(symbol.start, symbol.end, document),
        selection_range=to_range(symbol.name_start, symbol.name_end, document),
        children=[document_symbol(c, document) for c in symbol.children],
    )


def serve() -> int:
    """Run the server on stdin and stdout until the editor ends it."""
    logging.basicConfig(level=logging.WARNING)
    server = make_server()
    # Build the parsers and read the built-in blocks before the first document comes, and
    # keep the collector from walking them again at every edit.
    analyse("network Warm(input=1x8x8):\n    s: relu\n", "warm.cnn")
    gc.freeze()
    server.start_io()
    return 0
