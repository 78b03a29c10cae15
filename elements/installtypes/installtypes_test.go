package installtypes

import (
	"reflect"
	"testing"
)

func TestSelect(t *testing.T) {
	dirs := []string{"nova-source-install", "nova-package-install", "simple-init-repo-install", "simple-init-source-install", "glance-package-install", "not-an-install-dir"}
	for _, c := range []struct {
		name    string
		environ []string
		want    []string
	}{
		{"default is source", nil, []string{"nova-source-install", "simple-init-source-install"}},
		{"default changed", []string{"DIB_DEFAULT_INSTALLTYPE=package"}, []string{"glance-package-install", "nova-package-install"}},
		{"per prefix, underscores for dashes", []string{"DIB_INSTALLTYPE_simple_init=repo"}, []string{"nova-source-install", "simple-init-repo-install"}},
		{"named type without a directory gets nothing", []string{"DIB_INSTALLTYPE_nova=pip"}, []string{"simple-init-source-install"}},
		{"both", []string{"DIB_DEFAULT_INSTALLTYPE=package", "DIB_INSTALLTYPE_nova=source"}, []string{"glance-package-install", "nova-source-install"}},
	} {
		if got := Select(dirs, c.environ); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Select = %v, want %v", c.name, got, c.want)
		}
	}
}
