"""The language server (`cnnspec lsp`): what the compiler decides about a spec, shown in
an editor as it is written.

    documents   analyse an open document: IR, typed graph, blocks in scope, the error
    text        positions in spec text: words, a token's extent, the call around a place
    scope       which block a position is in
    index       the typed graph by where its nodes are written
    names       how layers, blocks, parameters and figures are shown
    diagnostics the error as problems, in the spec and in the used file that holds it
    hover, completion, definition, symbols    one feature each
    server      the protocol (pygls): documents in, features out

Only `server` imports pygls; the features take and give cnnspec's own positions.
"""
