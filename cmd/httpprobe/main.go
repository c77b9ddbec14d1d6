// Command httpprobe is the health check of images built FROM scratch,
// which have no shell and no curl: it GETs a URL and exits 0 on a 2xx
// answer, 1 otherwise.
//
//	httpprobe [--timeout 2s] [--print] URL
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "give up after this long")
	printBody := flag.Bool("print", false, "print the body (e.g. /metrics from inside a container)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: httpprobe [--timeout 2s] [--print] URL\n\nGETs URL; exit status 0 on a 2xx answer, 1 otherwise.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	body, err := probe(flag.Arg(0), *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpprobe:", err)
		os.Exit(1)
	}
	if *printBody {
		os.Stdout.Write(body)
	}
}

// probe GETs url and returns the body of a 2xx answer (at most 1 MiB).
func probe(url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %s %.512s", url, resp.Status, body)
	}
	return body, nil
}
