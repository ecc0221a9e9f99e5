/** Rule 5: images pinned, or a change of image name ignored. */
import { ResourceDescription, TYPES, displayName, isUnknown, str, list, record, quote } from "./resources";


/**
 * Resource check. An instance boots from an image id (`imageId`, or a block device sourced from
 * an image uuid), or from `imageName` with the resource option ignoreChanges: ["imageName"]:
 * otherwise a renamed or refreshed OVH image replaces the instance and wipes its disk.
 */
export function checkImagePinned(r: ResourceDescription): string[] {
    if (r.type !== TYPES.instance) return [];
    const { imageId, imageName } = r.props;
    if (isUnknown(imageId) || str(imageId) !== undefined) return [];
    const fromImageVolume = list(r.props.blockDevices).some(device => {
        const d = record(device);
        return d.sourceType === "image" && (isUnknown(d.uuid) || str(d.uuid) !== undefined);
    });
    if (fromImageVolume) return [];
    const name = displayName(r);
    if (isUnknown(imageName) || str(imageName) !== undefined) {
        if ((r.opts?.ignoreChanges ?? []).includes("imageName")) return [];
        const image = isUnknown(imageName) ? "an image name" : quote(imageName);
        return [
            `Instance ${quote(name)} boots from imageName ${image} without ignoreChanges: ["imageName"]: ` +
                `when OVH renames or refreshes the image, the next up replaces the instance and wipes ` +
                `its disk. Set imageId, or add the imageName to ignoreChanges.`,
        ];
    }
    return [`Instance ${quote(name)} names no image (imageId or imageName).`];
}
