// Command pagedserver is a stdio MCP server on the Go SDK (which speaks 2026-07-28 itself) whose lists come in
// pages of three: tools tool-00 to tool-09, each answering its own name, and grow, which adds tool-10 (and so sends
// notifications/tools/list_changed). streamproxy's tests use it to see that a list the policy filters keeps its
// pagination and its change notifications.
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	s := mcp.NewServer(&mcp.Implementation{Name: "pagedserver", Version: "1"}, &mcp.ServerOptions{PageSize: 3})
	add := func(name string) {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: "answers " + name},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
			})
	}
	for i := range 10 {
		add(fmt.Sprintf("tool-%02d", i))
	}
	mcp.AddTool(s, &mcp.Tool{Name: "grow", Description: "adds tool-10"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			add("tool-10")
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "added tool-10"}}}, nil, nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
