// Command metaserver is a stdio MCP server on the Go SDK with one tool, request-meta, that answers with the
// params._meta of the request it got, as JSON text: streamproxy's tests use it to see what reaches a child in
// _meta (the trace context of SEP-414).
package main

import (
	"context"
	"encoding/json"
	"log"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	s := mcp.NewServer(&mcp.Implementation{Name: "metaserver", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "request-meta", Description: "answers the request's _meta"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			meta, err := json.Marshal(req.Params.Meta)
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(meta)}}}, nil, nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
