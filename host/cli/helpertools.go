package cli

import (
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dibvm/dibvm/vmimage"
)

// helperToolsEnv is --helper-tools's variable, read where the flag is
// not given.
const helperToolsEnv = "DIBVM_HELPER_TOOLS"

func (f *vmFlags) registerHelperTools(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.helperTools, "helper-tools", nil,
		"give the helper VM the tool layer `LAYER`, whatever the elements: "+strings.Join(vmimage.LayerTools(), "; ")+
			"; create adds rpm by itself for DIB's rpm-family elements; repeatable, comma-separated (env "+helperToolsEnv+")")
}

// helperToolNames are the layers --helper-tools, or where it is not
// given its variable, names; checkHelperTools says whether dibvm has
// them.
func (f *vmFlags) helperToolNames() []string {
	values := f.helperTools
	if values == nil {
		values = []string{os.Getenv(helperToolsEnv)}
	}
	var names []string
	for _, v := range values {
		names = append(names, splitList(v)...)
	}
	return names
}

// checkHelperTools refuses a layer dibvm does not have, naming the flag
// or the variable it came from.
func (f *vmFlags) checkHelperTools() error {
	if _, err := vmimage.Layers(f.helperToolNames()); err != nil {
		if f.helperTools == nil {
			return usagef("%s=%s (for --helper-tools): %v", helperToolsEnv, os.Getenv(helperToolsEnv), err)
		}
		return usagef("--helper-tools %s: %v", strings.Join(f.helperTools, ","), err)
	}
	return nil
}
