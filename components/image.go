package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/imagefactory"
)

// InstallerImageArgs configures the installer image.
type InstallerImageArgs struct {
	// Schematic is the Image Factory schematic (YAML text of src/talos/schematic.yaml). Required.
	Schematic string
	// SchematicID is the schematic's content-addressed ID, computed offline. Required.
	SchematicID string
	// Image is the installer image reference built from SchematicID. Required.
	Image string
}

// InstallerImage registers the schematic with the Image Factory, so the factory serves the
// installer image every node's config names.
type InstallerImage struct {
	pulumi.ResourceState

	// Schematic is the factory registration; nodes wait for it before they pull the installer.
	Schematic *imagefactory.Schematic
	// Image is the installer image reference. It is computed offline, so a preview shows the new
	// reference in clear text when the schematic changes.
	Image string
	// SchematicID is the ID the factory returned, once it matches the ID computed offline.
	SchematicID pulumi.StringOutput
}

// NewInstallerImage registers the schematic.
func NewInstallerImage(ctx *pulumi.Context, name string, args *InstallerImageArgs, opts ...pulumi.ResourceOption) (*InstallerImage, error) {
	img := &InstallerImage{Image: args.Image}
	if err := ctx.RegisterComponentResource(installerImageType, name, img, opts...); err != nil {
		return nil, err
	}
	sch, err := imagefactory.NewSchematic(ctx, name+"-schematic", &imagefactory.SchematicArgs{
		Schematic: pulumi.String(args.Schematic),
	},
		pulumi.Parent(img),
		// The schematic ID is the resource ID, and an in-place update would keep the old one.
		pulumi.ReplaceOnChanges([]string{"schematic"}),
	)
	if err != nil {
		return nil, fmt.Errorf("registering the Image Factory schematic: %w", err)
	}
	img.Schematic = sch
	img.SchematicID = sch.ID().ApplyT(func(id pulumi.ID) (string, error) {
		if string(id) != args.SchematicID {
			return "", fmt.Errorf("the Image Factory registered src/talos/schematic.yaml as %s, but the program computed %s; "+
				"nodes would name an installer image the factory does not serve: check the image-factory module version in go.mod", id, args.SchematicID)
		}
		return string(id), nil
	}).(pulumi.StringOutput)
	if err := ctx.RegisterResourceOutputs(img, pulumi.Map{
		"image":       pulumi.String(img.Image),
		"schematicId": img.SchematicID,
	}); err != nil {
		return nil, err
	}
	return img, nil
}
