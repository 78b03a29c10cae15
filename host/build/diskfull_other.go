//go:build !unix

package build

func allocated(string) (int64, bool) { return 0, false }
