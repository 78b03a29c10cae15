package debootstrap

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dibvm/dibvm/guestagent/api"
)

// Service answers the guest's request (a POST to api.DebootstrapPath, with the keyring
// as its body) with the tarball for `debootstrap --unpack-tarball`, or
// with an error status and one line saying why, after which the guest
// runs debootstrap as usual. tmp is where it keeps the packages while it
// packs them.
//
// It serves one request at a time, each for at most an hour: the guest
// asks once a build, and a hostile one gets no more of the host than
// that.
func Service(tmp string) func(req *http.Request, fetch Fetch) *http.Response {
	var busy sync.Mutex
	return func(req *http.Request, fetch Fetch) *http.Response {
		if req.Method != http.MethodPost || req.URL.Path != api.DebootstrapPath {
			return textResponse(http.StatusNotFound, "POST "+api.DebootstrapPath+" only")
		}
		if !busy.TryLock() {
			return textResponse(http.StatusTooManyRequests, "another request is being served")
		}
		defer busy.Unlock()
		ctx, cancel := context.WithTimeout(req.Context(), time.Hour)
		defer cancel()
		keyring, err := io.ReadAll(io.LimitReader(req.Body, maxKeyring+1))
		if err != nil {
			return textResponse(http.StatusBadRequest, "reading the keyring: "+err.Error())
		}
		r, err := ParseRequest(req.URL.Query(), keyring)
		if err != nil {
			return textResponse(http.StatusBadRequest, err.Error())
		}
		plan, err := MakePlan(ctx, r, fetch, time.Now())
		if err != nil {
			return textResponse(http.StatusBadGateway, err.Error())
		}
		dir, err := os.MkdirTemp(tmp, "debootstrap-*")
		if err != nil {
			return textResponse(http.StatusInternalServerError, err.Error())
		}
		defer os.RemoveAll(dir)
		files, err := plan.Download(ctx, fetch, dir)
		if err != nil {
			return textResponse(http.StatusBadGateway, err.Error())
		}
		// Packed whole before the answer starts, so that a failure is a
		// status rather than a truncated tarball.
		tarball, err := os.CreateTemp(tmp, "debootstrap-*.tar")
		if err != nil {
			return textResponse(http.StatusInternalServerError, err.Error())
		}
		os.Remove(tarball.Name()) // open is enough
		if err := plan.WriteTarball(tarball, files, time.Now()); err != nil {
			tarball.Close()
			return textResponse(http.StatusInternalServerError, err.Error())
		}
		size, err := tarball.Seek(0, io.SeekCurrent)
		if err == nil {
			_, err = tarball.Seek(0, io.SeekStart)
		}
		if err != nil {
			tarball.Close()
			return textResponse(http.StatusInternalServerError, err.Error())
		}
		return &http.Response{
			StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"application/x-tar"}, "Content-Length": {strconv.FormatInt(size, 10)}},
			ContentLength: size,
			Body:          tarball,
			Close:         true,
		}
	}
}

func textResponse(code int, msg string) *http.Response {
	body := fmt.Sprintf("dibvm: debootstrap on the host: %s\n", msg)
	return &http.Response{
		StatusCode: code, ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(strings.NewReader(body)),
		Close:         true,
	}
}
